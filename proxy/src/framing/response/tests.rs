use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

/// Writes `requests` through a guard, sends `responses` from the upstream side, and returns
/// what the guard lets the client read.
async fn through_guard(requests: &[&str], responses: &str) -> io::Result<Vec<u8>> {
    let (client_side, mut upstream): (DuplexStream, DuplexStream) = tokio::io::duplex(64 * 1024);
    let mut guard = ResponseGuard::new(client_side, None);
    for request in requests {
        guard.write_all(request.as_bytes()).await?;
    }
    upstream.write_all(responses.as_bytes()).await?;
    upstream.shutdown().await?;
    let mut output = Vec::new();
    guard.read_to_end(&mut output).await?;
    Ok(output)
}

fn invalid_reason(result: io::Result<Vec<u8>>) -> String {
    let err = result.expect_err("the guard should fail the read");
    let inner = err.get_ref().expect("the error wraps a reason");
    assert!(inner.is::<InvalidResponse>(), "{err}");
    inner.to_string()
}

const GET: &str = "GET /a HTTP/1.1\r\nhost: app\r\n\r\n";
const HEAD: &str = "HEAD /a HTTP/1.1\r\nhost: app\r\n\r\n";

#[tokio::test]
async fn valid_responses_pass() {
    let responses = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello\
HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
HTTP/1.1 204 No Content\r\ncontent-length: 7\r\n\r\n\
HTTP/1.1 200\r\n\r\nuntil close";
    let requests = [GET, GET, GET, GET];
    let output = through_guard(&requests, responses).await.unwrap();
    assert_eq!(output, responses.as_bytes());
}

#[tokio::test]
async fn head_response_has_no_body() {
    let responses = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n\
HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let output = through_guard(&[HEAD, GET], responses).await.unwrap();
    assert_eq!(output, responses.as_bytes());
}

#[tokio::test]
async fn interim_response_keeps_request() {
    let responses = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    let output = through_guard(&[GET], responses).await.unwrap();
    assert_eq!(output, responses.as_bytes());
}

#[tokio::test]
async fn request_bodies_are_followed() {
    let post = "POST /a HTTP/1.1\r\nhost: app\r\ncontent-length: 4\r\n\r\nbody";
    let chunked =
        "POST /a HTTP/1.1\r\nhost: app\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n";
    let responses = "HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n\
HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n\
HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nnot empty\r\n\r\n";
    let output = through_guard(&[post, chunked, HEAD], responses).await;
    // The third request was HEAD, so the "body" bytes begin an invalid next head.
    let reason = invalid_reason(output);
    assert!(reason.contains("status line"), "{reason}");
}

#[tokio::test]
async fn ambiguous_responses_fail() {
    let cases = [
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked \r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\ncontent-length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length : 0\r\n\r\n",
        "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n",
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ];
    for response in cases {
        let reason = invalid_reason(through_guard(&[GET], response).await);
        assert!(!reason.is_empty(), "{response:?}");
    }
}

#[tokio::test]
async fn response_without_request_fails() {
    let reason =
        invalid_reason(through_guard(&[], "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await);
    assert!(reason.contains("no request"), "{reason}");
}

#[tokio::test]
async fn observer_gets_reason_once() {
    let reasons = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&reasons);
    let observer: ResponseRejectionObserver =
        Arc::new(move |reason| seen.lock().unwrap().push(reason));
    let (client_side, mut upstream) = tokio::io::duplex(64 * 1024);
    let mut guard = ResponseGuard::new(client_side, Some(observer));
    guard.write_all(GET.as_bytes()).await.unwrap();
    upstream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\nx")
        .await
        .unwrap();
    upstream.shutdown().await.unwrap();

    let mut output = Vec::new();
    assert!(guard.read_to_end(&mut output).await.is_err());
    assert!(guard.read_to_end(&mut output).await.is_err());

    assert_eq!(*reasons.lock().unwrap(), vec!["content_length"]);
}
