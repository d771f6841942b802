//! Helpers for the end-to-end tests: an app that records what reaches it, token requests,
//! and small JWT inspections.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use portcullis_demo::client::{DemoClient, Reply};

/// `applicationid:applicationsecret` in HTTP Basic form.
pub const BASIC_AUTH: &str = "Basic YXBwbGljYXRpb25pZDphcHBsaWNhdGlvbnNlY3JldA==";
pub const FORM: (&str, &str) = (
    "content-type",
    "application/x-www-form-urlencoded;charset=UTF-8",
);

/// A request as the recording app received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
}

/// A plain HTTP app on 127.0.0.1 that records every request and responds with `status`.
#[derive(Clone)]
pub struct RecordingApp {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl RecordingApp {
    /// Starts the app on `addr` (port 0 for any free port).
    pub async fn start(addr: SocketAddr, status: StatusCode) -> RecordingApp {
        let listener = TcpListener::bind(addr).await.expect("bind recording app");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = RecordingApp {
            addr,
            seen: seen.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let seen = seen.clone();
                        async move {
                            seen.lock().expect("lock").push(Seen {
                                method: request.method().clone(),
                                path: request.uri().path().to_owned(),
                                headers: request.headers().clone(),
                            });
                            let _ = request.into_body().collect().await;
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .expect("valid response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        app
    }

    /// Returns every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// Requests a password-grant token for peter and returns the access token.
pub async fn password_token(client: &DemoClient, sts_url: &str, extra: &str) -> String {
    let reply = client
        .send(
            Method::POST,
            &format!("{sts_url}/oauth/token"),
            &[("authorization", BASIC_AUTH), FORM],
            format!("grant_type=password&username=peter&password=peter123{extra}"),
        )
        .await
        .expect("token request gets a response");
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "token request failed: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["access_token"]
        .as_str()
        .expect("access_token in the response")
        .to_owned()
}

/// Decodes one segment of a JWT (0 = header, 1 = payload) as JSON.
pub fn jwt_part(token: &str, index: usize) -> serde_json::Value {
    let segment = token.split('.').nth(index).expect("token has the segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .expect("segment is base64url");
    serde_json::from_slice(&bytes).expect("segment is JSON")
}

/// Sends a GET with `authorization` (if any) and returns the reply.
pub async fn get(client: &DemoClient, url: &str, authorization: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| vec![("authorization", value)])
        .unwrap_or_default();
    client
        .send(Method::GET, url, &headers, Bytes::new())
        .await
        .expect("request gets a response")
}

/// Polls `url` until it returns 200 or `timeout` passes, and reports whether it did.
pub async fn wait_for_ok(client: &DemoClient, url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(reply) = client.send(Method::GET, url, &[], Bytes::new()).await {
            if reply.status == StatusCode::OK {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Returns `token` with one character of its signature changed.
pub fn tamper_signature(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let index = chars.len() - 10;
    chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// Free loopback ports for one demo, outside the range the kernel gives outgoing connections
/// (see [`portcullis_testkit::ports`]).
pub fn test_ports() -> portcullis_demo::layout::DemoPorts {
    let ports = portcullis_testkit::ports::loopback_ports(8).expect("free loopback ports");
    let list: [u16; 8] = ports.try_into().expect("eight ports");
    portcullis_demo::layout::DemoPorts::from_list(list)
}
