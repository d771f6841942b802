use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::*;

const LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 4096,
    max_uri_bytes: 256,
    max_headers: 10,
    max_body_bytes: Some(1000),
};

fn parse(head: &str) -> HeadParse {
    HeadParser::new(LIMITS).feed(head.as_bytes())
}

fn rejected_status(head: &str) -> StatusCode {
    match parse(head) {
        HeadParse::Rejected(rejection) => rejection.status,
        other => panic!("{head:?} was not rejected: {other:?}"),
    }
}

#[test]
fn valid_heads_give_framing() {
    let cases = [
        (
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            BodyFraming::None,
            false,
        ),
        (
            "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
            BodyFraming::Length(5),
            false,
        ),
        (
            "POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: Chunked\r\n\r\n",
            BodyFraming::Chunked,
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
            BodyFraming::None,
            true,
        ),
        ("GET / HTTP/1.0\r\n\r\n", BodyFraming::None, true),
        (
            "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            BodyFraming::None,
            false,
        ),
        (
            "\r\nGET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            BodyFraming::None,
            false,
        ),
        (
            "GET /?q=a|b HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Text: caf\u{e9}\t x \r\n\r\n",
            BodyFraming::None,
            false,
        ),
    ];
    for (head, framing, close) in cases {
        let expected = RequestHead {
            len: head.len(),
            framing,
            close,
            status: None,
            head_method: false,
        };
        assert_eq!(parse(head), HeadParse::Complete(expected), "{head:?}");
    }
}

#[test]
fn ambiguous_framing_rejected_with_400() {
    let heads = [
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5x\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5 \r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked,\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked \r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\t\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: 1\r\n\tfolded\r\n\r\n",
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n\n",
        "\nGET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A: a\x7fb\r\n\r\n",
        "GET / HTTP/1.1\r\nX-A:\x0c4\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding:\x0cchunked\r\n\r\n",
        "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
        "GET / HTTP/1.1\r\nX(A): 1\r\n\r\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "GET /\r\n\r\n",
        "GET / http/1.1\r\n\r\n",
        "GET /a#b HTTP/1.1\r\n\r\n",
        "GET /a\u{e9} HTTP/1.1\r\n\r\n",
        "G@T / HTTP/1.1\r\n\r\n",
    ];
    for head in heads {
        assert_eq!(rejected_status(head), StatusCode::BAD_REQUEST, "{head:?}");
    }
}

#[test]
fn limits_rejected_with_their_status() {
    let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(300));
    assert_eq!(rejected_status(&long_target), StatusCode::URI_TOO_LONG);
    let long_partial_target = format!("GET /{}", "a".repeat(300));
    assert_eq!(
        rejected_status(&long_partial_target),
        StatusCode::URI_TOO_LONG
    );

    let big_header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "b".repeat(5000));
    assert_eq!(
        rejected_status(&big_header),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let big_partial = format!("GET / HTTP/1.1\r\nX-Big: {}", "b".repeat(5000));
    assert_eq!(
        rejected_status(&big_partial),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );

    let many: String = (0..11).map(|i| format!("X-{i}: 1\r\n")).collect();
    let many_headers = format!("GET / HTTP/1.1\r\n{many}\r\n");
    assert_eq!(
        rejected_status(&many_headers),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );

    let big_body = "POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n";
    assert_eq!(rejected_status(big_body), StatusCode::PAYLOAD_TOO_LARGE);

    let version = "GET / HTTP/2.0\r\n\r\n";
    assert_eq!(
        rejected_status(version),
        StatusCode::HTTP_VERSION_NOT_SUPPORTED
    );
}

#[test]
fn limit_wins_over_syntax_however_bytes_arrive() {
    let line = format!("GET /{} HTTP/1.1\n\r\n", "a".repeat(300));
    let whole = HeadParser::new(LIMITS).feed(line.as_bytes());
    let mut parser = HeadParser::new(LIMITS);
    let mut pieces = HeadParse::Incomplete;
    for end in 1..=line.len() {
        pieces = parser.feed(&line.as_bytes()[..end]);
        if pieces != HeadParse::Incomplete {
            break;
        }
    }
    assert_eq!(whole, pieces);
    assert!(matches!(whole, HeadParse::Rejected(r) if r.status == StatusCode::URI_TOO_LONG));
}

#[test]
fn head_fed_byte_by_byte_completes_once() {
    let head = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
    let mut parser = HeadParser::new(LIMITS);
    for end in 1..head.len() {
        assert_eq!(parser.feed(&head[..end]), HeadParse::Incomplete, "{end}");
    }
    assert_eq!(
        parser.feed(head),
        HeadParse::Complete(RequestHead {
            len: head.len(),
            framing: BodyFraming::Length(3),
            close: false,
            status: None,
            head_method: false,
        })
    );
}

fn chunked(body: &str) -> Result<ChunkProgress, Rejection> {
    ChunkedBody::new(LIMITS).feed(body.as_bytes())
}

#[test]
fn valid_chunked_bodies_end_where_expected() {
    let cases = [
        "0\r\n\r\n",
        "5\r\nhello\r\n0\r\n\r\n",
        "A\r\n0123456789\r\n0\r\n\r\n",
        "5;name=value\r\nhello\r\n0\r\n\r\n",
        "5 ;ext\r\nhello\r\n0\r\n\r\n",
        "0\r\nX-Trailer: 1\r\n\r\n",
        "000005\r\nhello\r\n0\r\n\r\n",
    ];
    for body in cases {
        let with_next = format!("{body}GET / HTTP/1.1\r\n");
        assert_eq!(
            chunked(&with_next),
            Ok(ChunkProgress::Done(body.len())),
            "{body:?}"
        );
    }
    assert_eq!(chunked("5\r\nhel"), Ok(ChunkProgress::NeedMore));
}

#[test]
fn invalid_chunked_bodies_rejected() {
    let cases = [
        ("\r\n", StatusCode::BAD_REQUEST),
        ("x\r\n", StatusCode::BAD_REQUEST),
        ("-1\r\n", StatusCode::BAD_REQUEST),
        ("+5\r\nhello\r\n", StatusCode::BAD_REQUEST),
        ("0x5\r\nhello\r\n", StatusCode::BAD_REQUEST),
        ("5 \r\nhello\r\n", StatusCode::BAD_REQUEST),
        ("5\nhello\r\n", StatusCode::BAD_REQUEST),
        ("5\rhello\r\n", StatusCode::BAD_REQUEST),
        ("5\r\nhello\n0\r\n\r\n", StatusCode::BAD_REQUEST),
        ("5\r\nhelloX\r\n", StatusCode::BAD_REQUEST),
        ("4\r\nhello\r\n", StatusCode::BAD_REQUEST),
        ("5;a\nb\r\nhello\r\n", StatusCode::BAD_REQUEST),
        ("11111111111111111\r\n", StatusCode::BAD_REQUEST),
        ("0\r\nX-T: 1\n\r\n", StatusCode::BAD_REQUEST),
        ("0\r\n folded\r\n\r\n", StatusCode::BAD_REQUEST),
        ("0\r\nBad Name: 1\r\n\r\n", StatusCode::BAD_REQUEST),
        ("3E9\r\n", StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (body, status) in cases {
        let result = chunked(body);
        assert_eq!(result.map_err(|r| r.status), Err(status), "{body:?}");
    }
}

#[test]
fn chunked_body_limit_counts_all_chunks() {
    let mut body = ChunkedBody::new(LIMITS);
    let chunk = format!("1F4\r\n{}\r\n", "x".repeat(500));
    assert_eq!(body.feed(chunk.as_bytes()), Ok(ChunkProgress::NeedMore));
    assert_eq!(body.feed(chunk.as_bytes()), Ok(ChunkProgress::NeedMore));
    let status = body.feed(b"1\r\n").map_err(|r| r.status);
    assert_eq!(status, Err(StatusCode::PAYLOAD_TOO_LARGE));
}

/// Writes `input` into a guard and returns what the guard lets through and its state.
async fn guard_output(input: &[u8]) -> (Vec<u8>, Arc<GuardState>) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    client.write_all(input).await.unwrap();
    client.shutdown().await.unwrap();
    let state = Arc::new(GuardState::default());
    let mut guard = Http1Guard::new(
        server,
        b"",
        LIMITS,
        Duration::from_secs(30),
        Instant::now() + Duration::from_secs(30),
        Arc::clone(&state),
    );
    let mut output = Vec::new();
    guard.read_to_end(&mut output).await.unwrap();
    (output, state)
}

#[tokio::test]
async fn guard_passes_pipelined_requests() {
    let input = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc\
GET /b HTTP/1.1\r\n\r\n\
POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n";
    let (output, state) = guard_output(input).await;
    assert_eq!(output, input);
    assert!(!state.is_rejected());
}

#[tokio::test]
async fn guard_stops_before_smuggled_request() {
    let first = b"GET /a HTTP/1.1\r\n\r\n";
    let smuggling = b"POST /b HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n";
    let input = [&first[..], &smuggling[..]].concat();
    let (output, state) = guard_output(&input).await;
    assert_eq!(output, first);
    let rejection = state.head_rejection().expect("head rejection");
    assert_eq!(rejection.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn guard_stops_inside_bad_chunked_body() {
    let head = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let input = [
        &head[..],
        b"5\r\nhello\r\nzz\r\n\r\nGET /admin HTTP/1.1\r\n\r\n",
    ]
    .concat();
    let (output, state) = guard_output(&input).await;
    assert!(output.starts_with(head));
    assert!(!String::from_utf8_lossy(&output).contains("/admin"));
    assert_eq!(
        state.body_rejection(1).map(|r| r.status),
        Some(StatusCode::BAD_REQUEST)
    );
    assert_eq!(state.head_rejection(), None);
}

#[tokio::test]
async fn guard_ends_after_connection_close() {
    let first = b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n";
    let input = [&first[..], b"GET /b HTTP/1.1\r\n\r\n"].concat();
    let (output, state) = guard_output(&input).await;
    assert_eq!(output, first);
    assert!(!state.is_rejected());
}

#[tokio::test]
async fn guard_times_out_slow_head() {
    let (mut client, server) = tokio::io::duplex(1024);
    client.write_all(b"GET / HTTP/1.1\r\nHost").await.unwrap();
    let state = Arc::new(GuardState::default());
    let mut guard = Http1Guard::new(
        server,
        b"",
        LIMITS,
        Duration::from_millis(50),
        Instant::now() + Duration::from_millis(50),
        Arc::clone(&state),
    );
    let mut output = Vec::new();
    guard.read_to_end(&mut output).await.unwrap();
    assert!(output.is_empty());
    let rejection = state.head_rejection().expect("timeout rejection");
    assert_eq!(rejection.status, StatusCode::REQUEST_TIMEOUT);
    drop(client);
}

#[tokio::test]
async fn guard_uses_prefix_bytes() {
    let (mut client, server) = tokio::io::duplex(1024);
    client.write_all(b"T / HTTP/1.1\r\n\r\n").await.unwrap();
    client.shutdown().await.unwrap();
    let state = Arc::new(GuardState::default());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut guard = Http1Guard::new(
        server,
        b"GE",
        LIMITS,
        Duration::from_secs(30),
        deadline,
        state,
    );
    let mut output = Vec::new();
    guard.read_to_end(&mut output).await.unwrap();
    assert_eq!(output, b"GET / HTTP/1.1\r\n\r\n");
}

#[test]
fn quote_escapes_and_truncates() {
    assert_eq!(quote(b"a\r\nb"), "`a\\r\\nb`");
    assert_eq!(quote(&[b'x'; 50]), format!("`{}...`", "x".repeat(40)));
}
