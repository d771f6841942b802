//! An HTTP server on 127.0.0.1 that serves what an STS serves for its keys: a JWKS at
//! [`JWKS_PATH`] and, when set, a discovery document at [`DISCOVERY_PATH`]. It counts every
//! request by path, and a test can make it fail, hold its responses or swap its documents.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The path of the JWKS.
pub const JWKS_PATH: &str = "/jwks.json";
/// The path of the OpenID Connect discovery document, relative to the issuer.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// How long [`KeyServer::wait_for_jwks_hits`] waits before it fails the test.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

struct ServerState {
    jwks: Mutex<String>,
    discovery: Mutex<Option<String>>,
    /// While set, every request gets 500.
    failing: AtomicBool,
    /// Number of requests still to fail with 500 before the documents are served again.
    failures_left: AtomicUsize,
    /// While set, every request waits for a permit before the server responds.
    gate: Mutex<Option<Arc<Semaphore>>>,
    /// Requests received, by path, including held and failed ones.
    hits: Mutex<HashMap<String, usize>>,
}

/// The key server. It lives as long as the runtime of the test that started it.
pub struct KeyServer {
    pub addr: SocketAddr,
    state: Arc<ServerState>,
}

impl KeyServer {
    /// Starts serving `jwks` on a free port of 127.0.0.1.
    pub async fn start(jwks: Value) -> KeyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(ServerState {
            jwks: Mutex::new(jwks.to_string()),
            discovery: Mutex::new(None),
            failing: AtomicBool::new(false),
            failures_left: AtomicUsize::new(0),
            gate: Mutex::new(None),
            hits: Mutex::new(HashMap::new()),
        });
        let served = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let service = service_fn(move |request| respond(Arc::clone(&state), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        KeyServer { addr, state }
    }

    /// Returns `http://127.0.0.1:<port>`, usable as an issuer for discovery.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.base())
    }

    pub fn set_jwks(&self, jwks: Value) {
        self.set_raw_jwks(jwks.to_string());
    }

    /// Serves `text` as the JWKS as it is, for documents that are not valid JSON.
    pub fn set_raw_jwks(&self, text: String) {
        *self.state.jwks.lock().expect("lock") = text;
    }

    pub fn set_discovery(&self, document: Value) {
        *self.state.discovery.lock().expect("lock") = Some(document.to_string());
    }

    /// Makes every request get 500 while `failing` is set.
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }

    /// Makes the next `count` requests get 500.
    pub fn fail_next(&self, count: usize) {
        self.state.failures_left.store(count, Ordering::SeqCst);
    }

    /// Makes requests wait until [`KeyServer::release`].
    pub fn hold(&self) {
        *self.state.gate.lock().expect("lock") = Some(Arc::new(Semaphore::new(0)));
    }

    /// Lets every held and future request through.
    pub fn release(&self) {
        if let Some(gate) = self.state.gate.lock().expect("lock").take() {
            gate.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    /// Returns the number of requests received for `path`.
    pub fn hits(&self, path: &str) -> usize {
        let hits = self.state.hits.lock().expect("lock");
        hits.get(path).copied().unwrap_or(0)
    }

    /// Returns the number of requests received for any path.
    pub fn total_hits(&self) -> usize {
        self.state.hits.lock().expect("lock").values().sum()
    }

    /// Waits until [`JWKS_PATH`] has been requested at least `count` times, and fails the test
    /// after 30 s.
    pub async fn wait_for_jwks_hits(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        while self.hits(JWKS_PATH) < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the key server got {} JWKS requests, expected {count}",
                self.hits(JWKS_PATH)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn respond(
    state: Arc<ServerState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    *state
        .hits
        .lock()
        .expect("lock")
        .entry(path.clone())
        .or_default() += 1;
    let gate = state.gate.lock().expect("lock").clone();
    if let Some(gate) = gate {
        let _permit = gate.acquire().await;
    }
    let failing = state.failing.load(Ordering::SeqCst)
        || state
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
    let (status, body) = if failing {
        (StatusCode::INTERNAL_SERVER_ERROR, None)
    } else {
        let body = match path.as_str() {
            JWKS_PATH => Some(state.jwks.lock().expect("lock").clone()),
            DISCOVERY_PATH => state.discovery.lock().expect("lock").clone(),
            _ => None,
        };
        let status = if body.is_some() {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        (status, body)
    };
    let response = Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("valid response");
    Ok(response)
}
