//! Request smuggling (RFC 9112 framing) against a running sidecar: each ambiguous request is
//! sent with a second request behind it on the same connection, and must get 400, a closed
//! connection, an app that never saw the second request, and one more rejection counted for
//! its reason in `/metrics`. Also `Expect: 100-continue` and `Connection` naming the
//! sidecar's own headers.

mod common;

use common::raw::{exchange, EdgeApp, RawConnection, Scripted, ScriptedUpstream};
use common::{metric_value, raw_request, signer, Spec};
use portcullis::RunningSidecar;

/// The request hidden behind each ambiguous one.
const SMUGGLED: &str = "GET /public/smuggled HTTP/1.1\r\nHost: orders\r\n\r\n";

async fn start() -> (EdgeApp, RunningSidecar, tempfile::TempDir) {
    let app = EdgeApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;
    (app, sidecar, dir)
}

/// Returns the inbound listener's count of requests rejected for `reason`.
async fn rejections(sidecar: &RunningSidecar, reason: &str) -> f64 {
    let sample =
        format!(r#"portcullis_request_rejections_total{{listener="inbound",reason="{reason}"}}"#);
    metric_value(sidecar.admin_addr(), &sample).await
}

/// Sends `request` followed by [`SMUGGLED`] and checks the outcome: one 400, then the
/// connection closed, no smuggled request at the app, and one more rejection for `reason`.
async fn assert_rejected(
    sidecar: &RunningSidecar,
    app: &EdgeApp,
    case: &str,
    reason: &str,
    request: &str,
) {
    let before = rejections(sidecar, reason).await;
    let bytes = format!("{request}{SMUGGLED}");
    let responses = exchange(sidecar.inbound_addr(), bytes.as_bytes()).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![400], "{case}: {responses:?}");
    let smuggled: Vec<String> = app
        .targets()
        .into_iter()
        .filter(|target| target.contains("smuggled"))
        .collect();
    assert!(smuggled.is_empty(), "{case}: the app saw {smuggled:?}");
    let after = rejections(sidecar, reason).await;
    assert_eq!(
        after - before,
        1.0,
        "{case}: rejections counted for {reason}"
    );
}

fn post(headers: &str, body: &str) -> String {
    format!("POST /public/a HTTP/1.1\r\nHost: orders\r\n{headers}\r\n{body}")
}

#[tokio::test]
async fn valid_framing_serves_both_requests() {
    let (app, sidecar, _dir) = start().await;
    let requests = [
        post("Content-Length: 5\r\n", "hello"),
        post("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
        post(
            "Transfer-Encoding: chunked\r\n",
            "2;ext=1\r\nhe\r\n3\r\nllo\r\n0\r\nX-Trailer: 1\r\n\r\n",
        ),
    ];
    for request in requests {
        let mut connection = RawConnection::open(sidecar.inbound_addr()).await;
        connection
            .send(format!("{request}{SMUGGLED}").as_bytes())
            .await;
        let first = connection.response().await.expect("first response");
        let second = connection.response().await.expect("second response");
        assert_eq!((first.status, second.status), (200, 200), "{request:?}");
        assert!(first.text().contains("\"body_len\":5"), "{}", first.text());
    }
    assert_eq!(app.targets().len(), 6);
}

#[tokio::test]
async fn content_length_conflicts_rejected() {
    let (app, sidecar, _dir) = start().await;
    let zero_chunk = "0\r\n\r\n";
    let cases = [
        (
            "CL then TE",
            "ambiguous_length",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                zero_chunk,
            ),
        ),
        (
            "TE then CL",
            "ambiguous_length",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                zero_chunk,
            ),
        ),
        (
            "two values",
            "content_length",
            post("Content-Length: 0\r\nContent-Length: 49\r\n", ""),
        ),
        (
            "same value twice",
            "content_length",
            post("Content-Length: 0\r\nContent-Length: 0\r\n", ""),
        ),
        (
            "list",
            "content_length",
            post("Content-Length: 0, 49\r\n", ""),
        ),
        (
            "plus sign",
            "content_length",
            post("Content-Length: +0\r\n", ""),
        ),
        (
            "minus sign",
            "content_length",
            post("Content-Length: -0\r\n", ""),
        ),
        (
            "space inside",
            "content_length",
            post("Content-Length: 4 9\r\n", ""),
        ),
        (
            "non-digit",
            "content_length",
            post("Content-Length: 0x31\r\n", ""),
        ),
        (
            "trailing letter",
            "content_length",
            post("Content-Length: 0a\r\n", ""),
        ),
        ("empty", "content_length", post("Content-Length:\r\n", "")),
        (
            "overflow",
            "content_length",
            post("Content-Length: 18446744073709551617\r\n", ""),
        ),
    ];
    for (case, reason, request) in &cases {
        assert_rejected(&sidecar, &app, case, reason, request).await;
    }
    assert!(app.requests().is_empty(), "{:?}", app.targets());
}

#[tokio::test]
async fn transfer_encoding_variants_rejected() {
    let (app, sidecar, _dir) = start().await;
    let body = "0\r\n\r\n";
    let cases = [
        (
            "trailing comma",
            "transfer_encoding",
            "Transfer-Encoding: chunked,\r\n",
        ),
        (
            "chunked twice in one field",
            "transfer_encoding",
            "Transfer-Encoding: chunked, chunked\r\n",
        ),
        (
            "two fields",
            "transfer_encoding",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "gzip then chunked",
            "transfer_encoding",
            "Transfer-Encoding: gzip, chunked\r\n",
        ),
        (
            "chunked then identity",
            "transfer_encoding",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
        ),
        (
            "identity only",
            "transfer_encoding",
            "Transfer-Encoding: identity\r\n",
        ),
        (
            "other word",
            "transfer_encoding",
            "Transfer-Encoding: xchunked\r\n",
        ),
        (
            "trailing space",
            "transfer_encoding",
            "Transfer-Encoding: chunked \r\n",
        ),
        (
            "trailing tab",
            "transfer_encoding",
            "Transfer-Encoding: chunked\t\r\n",
        ),
        (
            "space before colon",
            "field_syntax",
            "Transfer-Encoding : chunked\r\n",
        ),
        (
            "tab before colon",
            "field_syntax",
            "Transfer-Encoding\t: chunked\r\n",
        ),
        (
            "vertical tab",
            "field_syntax",
            "Transfer-Encoding: \x0bchunked\r\n",
        ),
    ];
    for (case, reason, headers) in cases {
        assert_rejected(&sidecar, &app, case, reason, &post(headers, body)).await;
    }
    let http10 =
        "POST /public/a HTTP/1.0\r\nHost: orders\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_rejected(
        &sidecar,
        &app,
        "HTTP/1.0 with chunked",
        "transfer_encoding",
        http10,
    )
    .await;
    assert!(app.requests().is_empty(), "{:?}", app.targets());
}

#[tokio::test]
async fn line_ending_tricks_rejected() {
    let (app, sidecar, _dir) = start().await;
    let cases = [
        (
            "obs-fold hiding Transfer-Encoding",
            "obs_fold",
            "POST /public/a HTTP/1.1\r\nHost: orders\r\nX-Note: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "obs-fold continuing a value",
            "obs_fold",
            "GET /public/a HTTP/1.1\r\nHost: orders\r\nX-Note: a\r\n\tb\r\n\r\n",
        ),
        (
            "bare LF after the request line",
            "line_ending",
            "GET /public/a HTTP/1.1\nHost: orders\r\n\r\n",
        ),
        (
            "bare LF hiding Transfer-Encoding",
            "line_ending",
            "POST /public/a HTTP/1.1\r\nHost: orders\r\nX-Note: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "bare LF ending the head",
            "line_ending",
            "GET /public/a HTTP/1.1\r\nHost: orders\r\n\n",
        ),
        (
            "bare CR inside a field",
            "line_ending",
            "POST /public/a HTTP/1.1\r\nHost: orders\r\nX-Note: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "NUL in a field value",
            "field_syntax",
            "GET /public/a HTTP/1.1\r\nHost: orders\r\nX-Note: a\0b\r\n\r\n",
        ),
        (
            "two spaces in the request line",
            "start_line",
            "GET  /public/a HTTP/1.1\r\nHost: orders\r\n\r\n",
        ),
    ];
    for (case, reason, request) in cases {
        assert_rejected(&sidecar, &app, case, reason, request).await;
    }
    assert!(app.requests().is_empty(), "{:?}", app.targets());
}

#[tokio::test]
async fn invalid_chunk_sizes_rejected() {
    let (app, sidecar, _dir) = start().await;
    let cases = [
        ("negative", "chunk_size", "-1\r\n\r\n"),
        ("hex prefix", "chunk_size", "0x5\r\nhello\r\n0\r\n\r\n"),
        ("plus sign", "chunk_size", "+5\r\nhello\r\n0\r\n\r\n"),
        ("trailing space", "chunk_size", "5 \r\nhello\r\n0\r\n\r\n"),
        ("bare LF after size", "chunk_size", "5\nhello\r\n0\r\n\r\n"),
        (
            "overflowing size",
            "chunk_size",
            "fffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        ("empty size", "chunk_size", "\r\nhello\r\n0\r\n\r\n"),
        (
            "size larger than data",
            "chunk_data",
            "9\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "size smaller than data",
            "chunk_data",
            "3\r\nhello\r\n0\r\n\r\n",
        ),
        ("bare LF after data", "chunk_data", "5\r\nhello\n0\r\n\r\n"),
        ("bare LF in the last chunk", "chunk_size", "0\n\r\n"),
        (
            "folded trailer",
            "obs_fold",
            "0\r\nX-T: 1\r\n folded\r\n\r\n",
        ),
    ];
    for (case, reason, body) in cases {
        let request = post("Transfer-Encoding: chunked\r\n", body);
        assert_rejected(&sidecar, &app, case, reason, &request).await;
    }
}

#[tokio::test]
async fn rejection_response_explains() {
    let (_app, sidecar, _dir) = start().await;
    let request = post(
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "0\r\n\r\n",
    );

    let responses = exchange(sidecar.inbound_addr(), request.as_bytes()).await;

    assert_eq!(responses.len(), 1);
    let response = &responses[0];
    assert_eq!(response.status, 400);
    assert_eq!(response.header("connection"), Some("close"));
    let text = response.text();
    assert!(text.contains("bad_framing"), "{text}");
    assert!(
        text.contains("Content-Length and Transfer-Encoding"),
        "{text}"
    );
}

#[tokio::test]
async fn earlier_request_still_answered() {
    let (app, sidecar, _dir) = start().await;
    let good = "GET /public/first HTTP/1.1\r\nHost: orders\r\n\r\n";
    let bad = post("Content-Length: 1\r\nContent-Length: 2\r\n", "");

    let responses = exchange(
        sidecar.inbound_addr(),
        format!("{good}{bad}{SMUGGLED}").as_bytes(),
    )
    .await;

    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 400]);
    assert_eq!(app.targets(), vec!["/public/first"]);
}

#[tokio::test]
async fn rejected_expect_continue_gets_no_100() {
    let (app, sidecar, _dir) = start().await;
    let mut connection = RawConnection::open(sidecar.inbound_addr()).await;

    connection
        .send(
            b"POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 5\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await;
    let response = connection.response().await.expect("a response");

    assert_eq!(response.status, 401, "{}", response.text());
    assert!(app.requests().is_empty());
}

#[tokio::test]
async fn accepted_expect_continue_gets_100() {
    let (app, sidecar, _dir) = start().await;
    let token = signer().token();
    let mut connection = RawConnection::open(sidecar.inbound_addr()).await;

    let head = format!(
        "POST /orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    );
    connection.send(head.as_bytes()).await;
    let interim = connection.response().await.expect("100 Continue");
    connection.send(b"hello").await;
    let last = connection.response().await.expect("final response");

    assert_eq!(interim.status, 100);
    assert_eq!(last.status, 200, "{}", last.text());
    let request = &app.requests()[0];
    assert_eq!(request.body_len, Some(5));
    assert!(request.headers.get("expect").is_none());
}

#[tokio::test]
async fn connection_cannot_remove_identity() {
    let (app, sidecar, _dir) = start().await;
    let token = signer().token();
    let request = format!(
        "GET /orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer {token}\r\n\
         Connection: X-Portcullis-Subject, X-Portcullis-Scope, close\r\n\r\n"
    );

    let responses = exchange(sidecar.inbound_addr(), request.as_bytes()).await;

    assert_eq!(responses[0].status, 200);
    let request = &app.requests()[0];
    assert_eq!(request.headers["x-portcullis-subject"], "peter");
    assert_eq!(request.headers["x-portcullis-scope"], "foo bar");
}

/// Starts a sidecar in front of a scripted upstream that sends `bad` to the first request
/// and a valid response to every later one.
async fn start_scripted(
    bad: &'static str,
) -> (ScriptedUpstream, RunningSidecar, tempfile::TempDir) {
    let upstream = ScriptedUpstream::start(move |index| {
        let bytes = if index == 0 {
            bad.as_bytes().to_vec()
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()
        };
        Scripted {
            bytes,
            close: false,
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), upstream.addr).start().await;
    (upstream, sidecar, dir)
}

/// Returns the count of responses from the app rejected for `reason`.
async fn upstream_rejections(sidecar: &RunningSidecar, reason: &str) -> f64 {
    let sample = format!(
        r#"portcullis_upstream_response_rejections_total{{direction="inbound",reason="{reason}"}}"#
    );
    metric_value(sidecar.admin_addr(), &sample).await
}

#[tokio::test]
async fn ambiguous_upstream_responses_get_502() {
    let cases = [
        (
            "ambiguous_length",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "ambiguous_length",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n",
        ),
        (
            "content_length",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 50\r\n\r\nhello",
        ),
        (
            "content_length",
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello",
        ),
        (
            "content_length",
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello",
        ),
        (
            "transfer_encoding",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "transfer_encoding",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked \r\n\r\n0\r\n\r\n",
        ),
        (
            "line_ending",
            "HTTP/1.1 200 OK\ncontent-length: 2\r\n\r\nok",
        ),
        (
            "obs_fold",
            "HTTP/1.1 200 OK\r\nx-note: a\r\n folded\r\n\r\n",
        ),
        (
            "field_syntax",
            "HTTP/1.1 200 OK\r\ncontent-length : 2\r\n\r\nok",
        ),
    ];
    for (reason, bad) in cases {
        let (upstream, sidecar, _dir) = start_scripted(bad).await;

        let first = raw_request(
            sidecar.inbound_addr(),
            "GET /public/a HTTP/1.1\r\nHost: orders\r\n",
        )
        .await;
        let second = raw_request(
            sidecar.inbound_addr(),
            "GET /public/b HTTP/1.1\r\nHost: orders\r\n",
        )
        .await;

        assert_eq!(first.status, 502, "{bad:?}: {}", first.body);
        assert!(
            first.body.contains("upstream_invalid_response"),
            "{}",
            first.body
        );
        assert_eq!(second.status, 200, "{bad:?}: {}", second.body);
        assert_eq!(
            upstream.connections(),
            2,
            "{bad:?}: the connection that sent the invalid response was reused"
        );
        assert_eq!(
            upstream_rejections(&sidecar, reason).await,
            1.0,
            "{bad:?}: rejections counted for {reason}"
        );
    }
}

#[tokio::test]
async fn invalid_response_chunk_cuts_response() {
    let bad = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n";
    let (upstream, sidecar, _dir) = start_scripted(bad).await;

    let mut connection = RawConnection::open(sidecar.inbound_addr()).await;
    connection
        .send(b"GET /public/a HTTP/1.1\r\nHost: orders\r\n\r\n")
        .await;
    // The head was valid and is forwarded; the response must end at the bad chunk.
    let mut closed = false;
    for _ in 0..100 {
        if connection.is_closed_within(common::WAIT_LIMIT).await {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "the client connection stayed open after a cut response"
    );
    let second = raw_request(
        sidecar.inbound_addr(),
        "GET /public/b HTTP/1.1\r\nHost: orders\r\n",
    )
    .await;

    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(upstream.connections(), 2);
    assert_eq!(upstream_rejections(&sidecar, "chunk_size").await, 1.0);
}

#[tokio::test]
async fn upstream_connection_reused() {
    let (app, sidecar, _dir) = start().await;

    for target in ["/public/a", "/public/b", "/public/c"] {
        let head = format!("GET {target} HTTP/1.1\r\nHost: orders\r\n");
        assert_eq!(raw_request(sidecar.inbound_addr(), &head).await.status, 200);
    }
    let head = raw_request(
        sidecar.inbound_addr(),
        "HEAD /public/d HTTP/1.1\r\nHost: orders\r\n",
    )
    .await;
    let after_head = raw_request(
        sidecar.inbound_addr(),
        "GET /public/e HTTP/1.1\r\nHost: orders\r\n",
    )
    .await;

    assert_eq!(head.status, 200);
    assert_eq!(after_head.status, 200, "{}", after_head.body);
    assert_eq!(app.targets().len(), 5);
    assert_eq!(
        app.connections(),
        1,
        "each request opened its own connection"
    );
}
