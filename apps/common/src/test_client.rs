//! A minimal HTTP/1.1 client for the apps' integration tests: one connection per request,
//! and a panic with a message on any transport failure, because only tests use it.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A response with its body read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    /// Parses the body as JSON, panicking with the body text when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "response body is not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Returns the `detail` field of an error body.
    pub fn detail(&self) -> String {
        match self.json().get("detail") {
            Some(serde_json::Value::String(detail)) => detail.clone(),
            other => panic!("error body has no string detail: {other:?}"),
        }
    }
}

/// Builds a request with a JSON body and `Content-Type: application/json`.
pub fn json_request(method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a request built from a valid method and path")
}

/// Builds a request without a body.
pub fn empty_request(method: Method, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::default())
        .expect("a request built from a valid method and path")
}

/// Sends `request` to `addr` over a new connection and reads the whole response. Adds a
/// `Host` header naming `addr` unless the request has one.
pub async fn send(addr: SocketAddr, mut request: Request<Full<Bytes>>) -> TestResponse {
    if !request.headers().contains_key(HOST) {
        let host = addr
            .to_string()
            .parse()
            .expect("a socket address is a valid Host");
        request.headers_mut().insert(HOST, host);
    }

    let stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|error| panic!("failed to connect to {addr}: {error}"));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap_or_else(|error| panic!("HTTP handshake with {addr} failed: {error}"));
    tokio::spawn(connection);

    let response = sender
        .send_request(request)
        .await
        .unwrap_or_else(|error| panic!("request to {addr} failed: {error}"));
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|error| panic!("failed to read the response body from {addr}: {error}"))
        .to_bytes();
    TestResponse {
        status,
        headers,
        body,
    }
}
