//! Bounded resources against a running sidecar: header block, URI, header count and body
//! limits with their standard statuses, the head and idle timeouts, the connection cap, and
//! the HTTP/2 stream and reset limits, each with its counter in `/metrics`. Everything runs
//! on 127.0.0.1; the only load is a few connections and one burst of 100 stream resets.

mod common;

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::raw::{exchange, EdgeApp, RawConnection};
use common::{get_h2c, metric_value, raw_request, signer, Spec, WAIT_LIMIT};
use portcullis::RunningSidecar;

/// Starts a sidecar whose `[inbound.limits]` table is `limits`.
async fn start(limits: &str) -> (EdgeApp, RunningSidecar, tempfile::TempDir) {
    let app = EdgeApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new(dir.path(), app.addr);
    spec.extra = format!("\n[inbound.limits]\n{limits}\n");
    let sidecar = spec.start().await;
    (app, sidecar, dir)
}

fn public_get(headers: &str) -> String {
    format!("GET /public/a HTTP/1.1\r\nHost: orders\r\n{headers}\r\n")
}

/// Returns the inbound listener's count of requests rejected for `reason`.
async fn rejections(sidecar: &RunningSidecar, reason: &str) -> f64 {
    let sample =
        format!(r#"portcullis_request_rejections_total{{listener="inbound",reason="{reason}"}}"#);
    metric_value(sidecar.admin_addr(), &sample).await
}

/// Sends `request` and expects exactly one response with `status`, then a closed connection,
/// and one more rejection counted for `reason`.
async fn assert_rejected_and_closed(
    sidecar: &RunningSidecar,
    request: &str,
    status: u16,
    reason: &str,
) {
    let before = rejections(sidecar, reason).await;
    let responses = exchange(sidecar.inbound_addr(), request.as_bytes()).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![status], "{responses:?}");
    assert_eq!(rejections(sidecar, reason).await - before, 1.0, "{reason}");
}

#[tokio::test]
async fn twelve_kib_token_fits_default_limits() {
    let (app, sidecar, _dir) = start("").await;
    // Base64 makes 9,000 bytes of claims about 12 KiB of token.
    let token = signer().token_with(json!({ "padding": "x".repeat(9000) }));
    assert!(token.len() >= 12 * 1024, "{}", token.len());

    let http1 = raw_request(
        sidecar.inbound_addr(),
        &format!("GET /orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer {token}\r\n"),
    )
    .await;
    let http2 = get_h2c(sidecar.inbound_addr(), "http://orders/orders", Some(&token)).await;

    assert_eq!(http1.status, 200, "{}", http1.body);
    assert_eq!(http2.status, 200, "{}", http2.body);
    assert_eq!(app.requests().len(), 2);
}

#[tokio::test]
async fn oversized_head_gets_431() {
    let (app, sidecar, _dir) = start("max_head_bytes = 4096").await;
    let big = format!("X-Big: {}\r\n", "b".repeat(5000));

    assert_rejected_and_closed(&sidecar, &public_get(&big), 431, "head_too_large").await;
    let fits = raw_request(
        sidecar.inbound_addr(),
        "GET /public/b HTTP/1.1\r\nHost: orders\r\n",
    )
    .await;

    assert_eq!(fits.status, 200);
    assert_eq!(app.targets(), vec!["/public/b"]);
}

#[tokio::test]
async fn too_many_headers_gets_431() {
    let (app, sidecar, _dir) = start("max_headers = 10").await;
    let fields = |count: usize| -> String { (0..count).map(|i| format!("X-{i}: 1\r\n")).collect() };

    // Host, eight more fields and Connection make ten: at the limit.
    let at_limit = public_get(&format!("{}Connection: close\r\n", fields(8)));
    let responses = exchange(sidecar.inbound_addr(), at_limit.as_bytes()).await;
    assert_rejected_and_closed(&sidecar, &public_get(&fields(10)), 431, "too_many_headers").await;

    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].status, 200);
    assert_eq!(app.requests().len(), 1);
}

#[tokio::test]
async fn long_target_gets_414() {
    let (app, sidecar, _dir) = start("max_uri_bytes = 100").await;
    let long = format!(
        "GET /public/{} HTTP/1.1\r\nHost: orders\r\n\r\n",
        "a".repeat(100)
    );

    assert_rejected_and_closed(&sidecar, &long, 414, "uri_too_long").await;
    assert!(app.requests().is_empty());
}

#[tokio::test]
async fn large_body_gets_413() {
    let (app, sidecar, _dir) = start("max_body_bytes = 10").await;
    let declared =
        "POST /public/a HTTP/1.1\r\nHost: orders\r\nContent-Length: 11\r\n\r\nhello world";
    let chunked = "POST /public/a HTTP/1.1\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n\
                   5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let fits = "POST /public/a HTTP/1.1\r\nHost: orders\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhelloworld";

    assert_rejected_and_closed(&sidecar, declared, 413, "body_too_large").await;
    assert_rejected_and_closed(&sidecar, chunked, 413, "body_too_large").await;
    let responses = exchange(sidecar.inbound_addr(), fits.as_bytes()).await;

    assert_eq!(responses[0].status, 200);
    let requests = app.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body_len, Some(10));
}

#[tokio::test]
async fn large_http2_body_gets_413() {
    let (app, sidecar, _dir) = start("max_body_bytes = 10").await;
    let stream = TcpStream::connect(sidecar.inbound_addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);

    let mut statuses = Vec::new();
    for body in ["hello world", "helloworld"] {
        let request = http::Request::post("http://orders/public/a")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        statuses.push(response.status().as_u16());
    }

    assert_eq!(statuses, vec![413, 200]);
    assert_eq!(app.requests().len(), 1);
}

#[tokio::test]
async fn large_http2_header_list_rejected() {
    let (app, sidecar, _dir) = start("max_head_bytes = 4096").await;
    let stream = TcpStream::connect(sidecar.inbound_addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);

    let request = http::Request::get("http://orders/public/a")
        .header("x-big", "b".repeat(5000))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();

    assert_eq!(response.status(), 431);
    assert!(app.requests().is_empty());
}

#[tokio::test]
async fn slow_head_gets_408_and_close() {
    let (app, sidecar, _dir) = start("head_timeout_secs = 1").await;
    let mut connection = RawConnection::open(sidecar.inbound_addr()).await;

    connection
        .send(b"GET /public/a HTTP/1.1\r\nHost: ord")
        .await;
    let responses = connection.responses_until_closed().await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![408]);
    assert!(app.requests().is_empty());
    assert_eq!(rejections(&sidecar, "head_timeout").await, 1.0);
}

#[tokio::test]
async fn idle_connection_closed_but_not_busy_one() {
    let (app, sidecar, _dir) = start("idle_timeout_secs = 1").await;

    let mut idle = RawConnection::open(sidecar.inbound_addr()).await;
    idle.send(public_get("").as_bytes()).await;
    assert_eq!(idle.response().await.map(|r| r.status), Some(200));
    assert!(
        idle.is_closed_within(WAIT_LIMIT).await,
        "the idle connection stayed open"
    );

    // A request that takes longer than the idle timeout is not cut.
    let mut busy = RawConnection::open(sidecar.inbound_addr()).await;
    busy.send(b"GET /slow HTTP/1.1\r\nHost: orders\r\n").await;
    busy.send(format!("Authorization: Bearer {}\r\n\r\n", signer().token()).as_bytes())
        .await;
    app.wait_for_requests(2).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.release();
    assert_eq!(busy.response().await.map(|r| r.status), Some(200));
}

#[tokio::test]
async fn extra_connections_refused() {
    let (_app, sidecar, _dir) = start("max_connections = 2").await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut connection = RawConnection::open(sidecar.inbound_addr()).await;
        connection.send(public_get("").as_bytes()).await;
        assert_eq!(connection.response().await.map(|r| r.status), Some(200));
        open.push(connection);
    }

    let mut refused = RawConnection::open(sidecar.inbound_addr()).await;
    let answer = refused.responses_until_closed().await;
    assert!(
        answer.iter().all(|response| response.status == 503),
        "{answer:?}"
    );
    let refusals = metric_value(
        sidecar.admin_addr(),
        r#"portcullis_connections_refused_total{listener="inbound"}"#,
    )
    .await;
    assert_eq!(refusals, 1.0);

    // The open connections keep working, and a slot freed is a slot usable again.
    open[0].send(public_get("").as_bytes()).await;
    assert_eq!(open[0].response().await.map(|r| r.status), Some(200));
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        let reply = exchange(
            sidecar.inbound_addr(),
            public_get("Connection: close\r\n").as_bytes(),
        )
        .await;
        if reply.first().map(|r| r.status) == Some(200) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no slot freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn refused_client_reads_whole_503() {
    let (_app, sidecar, _dir) = start("max_connections = 1").await;
    let mut held = RawConnection::open(sidecar.inbound_addr()).await;
    held.send(public_get("").as_bytes()).await;
    assert_eq!(held.response().await.map(|r| r.status), Some(200));

    // A client that sends its head, then its body a moment later, as an upload does. If the
    // sidecar closed the socket at once, the kernel would respond to the body with a reset: the
    // body write would fail, and many clients then report that error instead of the 503.
    let body = "x".repeat(32 * 1024);
    let head = format!(
        "POST /public/a HTTP/1.1\r\nHost: orders\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    for attempt in 0..3 {
        let mut refused = TcpStream::connect(sidecar.inbound_addr()).await.unwrap();
        refused.write_all(head.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = refused.write_all(body.as_bytes()).await;
        let mut answer = Vec::new();
        let read = tokio::time::timeout(WAIT_LIMIT, refused.read_to_end(&mut answer))
            .await
            .expect("the refused connection was not closed");

        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(
            sent.is_ok(),
            "attempt {attempt}: body write failed: {sent:?}"
        );
        assert!(read.is_ok(), "attempt {attempt}: read failed: {read:?}");
        assert!(
            text.starts_with("http/1.1 503 "),
            "attempt {attempt}: {text:?}"
        );
        assert!(text.contains("connection: close\r\n"), "{text:?}");
        assert!(text.contains("retry-after: 1\r\n"), "{text:?}");
    }

    // The refusals held no slot: the open connection still works.
    held.send(public_get("").as_bytes()).await;
    assert_eq!(held.response().await.map(|r| r.status), Some(200));
}

#[tokio::test]
async fn http2_idle_connection_gets_goaway() {
    let (app, sidecar, _dir) = start("idle_timeout_secs = 1").await;

    // One request on a raw HTTP/2 connection, then nothing: the sidecar must respond, wait
    // for the idle timeout, send GOAWAY and close.
    let mut idle = TcpStream::connect(sidecar.inbound_addr()).await.unwrap();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(SETTINGS, 0, 0, &[]));
    // END_STREAM | END_HEADERS
    bytes.extend(frame(HEADERS, 0x5, 1, &get_header_block()));
    idle.write_all(&bytes).await.unwrap();
    let frames = read_frames_answering_pings(&mut idle).await;

    let kinds: Vec<u8> = frames.iter().map(|(kind, _)| *kind).collect();
    let response = kinds.iter().position(|kind| *kind == HEADERS);
    let goaway = kinds.iter().position(|kind| *kind == GOAWAY);
    assert!(response.is_some(), "no response: {kinds:?}");
    assert!(goaway > response, "no GOAWAY after the response: {kinds:?}");
    for (kind, payload) in &frames {
        if *kind == GOAWAY {
            let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
            assert_eq!(code, NO_ERROR);
        }
    }

    // A stream that stays open longer than the idle timeout is not cut.
    let stream = TcpStream::connect(sidecar.inbound_addr()).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get("http://orders/slow")
        .header("authorization", format!("Bearer {}", signer().token()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let pending = tokio::spawn(sender.send_request(request));
    app.wait_for_requests(1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    app.release();
    let response = pending.await.unwrap().expect("the busy stream was cut");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn http2_idle_close_without_ping_ack() {
    let (_app, sidecar, _dir) = start("idle_timeout_secs = 1").await;

    // One request on a raw HTTP/2 connection whose client acknowledges SETTINGS but never a
    // PING, so the graceful shutdown after the idle timeout cannot finish on its own. The
    // sidecar must still close the connection.
    let mut stubborn = TcpStream::connect(sidecar.inbound_addr()).await.unwrap();
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(SETTINGS, 0, 0, &[]));
    // END_STREAM | END_HEADERS
    bytes.extend(frame(HEADERS, 0x5, 1, &get_header_block()));
    stubborn.write_all(&bytes).await.unwrap();
    let frames = tokio::time::timeout(WAIT_LIMIT, read_frames_until_closed(&mut stubborn, false))
        .await
        .expect("the connection that never acknowledged a PING stayed open");

    let kinds: Vec<u8> = frames.iter().map(|(kind, _)| *kind).collect();
    assert!(kinds.contains(&HEADERS), "no response: {kinds:?}");
    assert!(kinds.contains(&GOAWAY), "no GOAWAY: {kinds:?}");
    assert!(kinds.contains(&PING), "no PING with the GOAWAY: {kinds:?}");
}

// ---------------------------------------------------------------------------------------
// HTTP/2 frames written by hand (RFC 9113), because a client library would not send a
// rapid reset burst on purpose.

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const NO_ERROR: u32 = 0x0;
const ENHANCE_YOUR_CALM: u32 = 0xb;
const CANCEL: u32 = 0x8;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    let mut bytes = length.to_be_bytes()[1..].to_vec();
    bytes.push(kind);
    bytes.push(flags);
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Encodes a GET for `/` on `orders` with HPACK, from the static table and a literal
/// authority.
fn get_header_block() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 6];
    block.extend_from_slice(b"orders");
    block
}

/// Reads frames until the server closes, returning `(type, payload)` pairs.
async fn read_frames(stream: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        let mut header = [0u8; 9];
        match tokio::time::timeout(WAIT_LIMIT, stream.read_exact(&mut header)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return frames,
            Err(_) => panic!("the server neither sent frames nor closed: {frames:?}"),
        }
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        if stream.read_exact(&mut payload).await.is_err() {
            return frames;
        }
        let kind = header[3];
        frames.push((kind, payload));
        if kind == GOAWAY {
            return frames;
        }
    }
}

/// Reads frames until the server closes the connection, acknowledging its SETTINGS and
/// PINGs as a client library would, and returns `(type, payload)` pairs. A graceful HTTP/2
/// shutdown waits for the acknowledgement of a PING before it closes.
async fn read_frames_answering_pings(stream: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    read_frames_until_closed(stream, true).await
}

/// Reads frames until the server closes the connection, acknowledging its SETTINGS, and its
/// PINGs when `answer_pings` is set, and returns `(type, payload)` pairs.
async fn read_frames_until_closed(
    stream: &mut TcpStream,
    answer_pings: bool,
) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        let mut header = [0u8; 9];
        match tokio::time::timeout(WAIT_LIMIT, stream.read_exact(&mut header)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return frames,
            Err(_) => panic!("the server neither sent frames nor closed: {frames:?}"),
        }
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        if stream.read_exact(&mut payload).await.is_err() {
            return frames;
        }
        let (kind, flags) = (header[3], header[4]);
        let is_ack = flags & ACK != 0;
        // The server may close right after, and a failed write shows up as the end of frames.
        if kind == SETTINGS && !is_ack {
            let _ = stream.write_all(&frame(SETTINGS, ACK, 0, &[])).await;
        } else if kind == PING && !is_ack && answer_pings {
            let _ = stream.write_all(&frame(PING, ACK, 0, &payload)).await;
        }
        frames.push((kind, payload));
    }
}

#[tokio::test]
async fn http2_settings_carry_stream_limit() {
    let (_app, sidecar, _dir) = start("http2_max_concurrent_streams = 7").await;
    let mut stream = TcpStream::connect(sidecar.inbound_addr()).await.unwrap();
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();

    let mut header = [0u8; 9];
    stream.read_exact(&mut header).await.unwrap();
    let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.unwrap();

    assert_eq!(header[3], SETTINGS, "the server's first frame is SETTINGS");
    let settings: Vec<(u16, u32)> = payload
        .chunks(6)
        .map(|s| {
            (
                u16::from_be_bytes([s[0], s[1]]),
                u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
            )
        })
        .collect();
    assert!(
        settings.contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 7)),
        "{settings:?}"
    );
}

#[tokio::test]
async fn rapid_reset_gets_goaway() {
    let (_app, sidecar, _dir) = start("").await;
    let mut stream = TcpStream::connect(sidecar.inbound_addr()).await.unwrap();
    let mut burst = PREFACE.to_vec();
    burst.extend(frame(SETTINGS, 0, 0, &[]));
    let block = get_header_block();
    // END_STREAM | END_HEADERS; 100 streams opened and cancelled at once.
    for stream_id in (1..200).step_by(2) {
        burst.extend(frame(HEADERS, 0x5, stream_id, &block));
        burst.extend(frame(RST_STREAM, 0, stream_id, &CANCEL.to_be_bytes()));
    }

    stream.write_all(&burst).await.unwrap();
    let frames = read_frames(&mut stream).await;

    let goaway = frames
        .iter()
        .find(|(kind, _)| *kind == GOAWAY)
        .unwrap_or_else(|| panic!("no GOAWAY among {} frames", frames.len()));
    let code = u32::from_be_bytes([goaway.1[4], goaway.1[5], goaway.1[6], goaway.1[7]]);
    assert_eq!(code, ENHANCE_YOUR_CALM);
}

#[tokio::test]
async fn stalled_tls_handshake_closed() {
    let app = EdgeApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki();
    let mut spec = Spec::new(dir.path(), app.addr).with_tls(&pki, false);
    spec.extra
        .push_str("\n[inbound.limits]\ntls_handshake_timeout_secs = 1\nhead_timeout_secs = 60\n");
    let sidecar = spec.start().await;

    // A client that connects and never sends a ClientHello is cut by the handshake timeout,
    // not left for the much longer head timeout.
    let mut stalled = RawConnection::open(sidecar.inbound_addr()).await;
    assert!(
        stalled.is_closed_within(Duration::from_secs(5)).await,
        "the connection without a handshake stayed open"
    );
}
