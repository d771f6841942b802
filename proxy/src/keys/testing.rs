//! Test support shared by the auth modules: real signing keys, tokens, and an in-process JWKS
//! server on 127.0.0.1 that counts requests and can fail, stall or swap its key set.
//! [`signing`] contains the keys and signing, which the integration tests compile too.

mod signing;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{JwksSource, ProviderConfig};

pub use signing::{jwks, TestKey};

pub const ISSUER: &str = "https://sts.test";
pub const AUDIENCE: &str = "orders";
/// The fixed "now" of tests that control the verifier's clock: 2027-01-15T08:00:00Z.
pub const NOW: i64 = 1_800_000_000;

/// RFC 9068 claims from [`ISSUER`] for [`AUDIENCE`], valid from `now - 10` to `now + 3600`.
pub fn claims_at(now: i64) -> Value {
    json!({
        "iss": ISSUER,
        "sub": "peter",
        "aud": [AUDIENCE, "inventory"],
        "client_id": "applicationid",
        "scope": "foo bar",
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 3600,
        "jti": "6d1f0b8c-2a1e-4c4e-9a55-0c2d1f7e9b10",
    })
}

/// Builds the claims of [`claims_at`] around the current system time.
pub fn current_claims() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    claims_at(i64::try_from(now).expect("time fits i64"))
}

/// Builds a provider for [`ISSUER`] that reads its keys from `jwks`, with the configuration
/// defaults.
pub fn provider(jwks: JwksSource) -> ProviderConfig {
    ProviderConfig {
        issuer: ISSUER.to_owned(),
        audiences: vec![AUDIENCE.to_owned()],
        jwks,
        ca_file: None,
        algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
        leeway: Duration::from_secs(60),
        refresh_interval: Duration::from_secs(300),
        unknown_kid_cooldown: Duration::from_secs(30),
        fetch_timeout: Duration::from_secs(5),
        max_key_staleness: Duration::from_secs(86_400),
        max_token_lifetime: None,
        required_typ: None,
    }
}

/// The JWKS server's document and behaviour.
struct ServerState {
    document: Mutex<String>,
    requests: AtomicUsize,
    /// Number of requests still to fail with 500 before the document is served again.
    failures_left: AtomicUsize,
    /// While set, every request waits for a permit before the server responds.
    gate: Mutex<Option<Arc<Semaphore>>>,
}

/// An HTTP JWKS server on 127.0.0.1, port 0, living as long as the test's runtime.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

impl JwksServer {
    /// Starts serving `document`.
    pub async fn start(document: Value) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(ServerState {
            document: Mutex::new(document.to_string()),
            requests: AtomicUsize::new(0),
            failures_left: AtomicUsize::new(0),
            gate: Mutex::new(None),
        });
        let server_state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&server_state);
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(Arc::clone(&state), request));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        JwksServer { addr, state }
    }

    pub fn uri(&self) -> Uri {
        format!("http://{}/.well-known/jwks.json", self.addr)
            .parse()
            .expect("valid URI")
    }

    pub fn source(&self) -> JwksSource {
        JwksSource::Uri(self.uri())
    }

    /// Requests received so far, including held and failed ones.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    pub fn set_document(&self, document: Value) {
        *self.state.document.lock().expect("lock") = document.to_string();
    }

    pub fn set_raw_document(&self, document: String) {
        *self.state.document.lock().expect("lock") = document;
    }

    /// Makes the next `count` requests fail with 500.
    pub fn fail_next(&self, count: usize) {
        self.state.failures_left.store(count, Ordering::SeqCst);
    }

    /// Makes requests wait until [`JwksServer::release`].
    pub fn hold(&self) {
        *self.state.gate.lock().expect("lock") = Some(Arc::new(Semaphore::new(0)));
    }

    /// Lets every held and future request through.
    pub fn release(&self) {
        if let Some(gate) = self.state.gate.lock().expect("lock").take() {
            gate.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    /// Waits until the server has received at least `count` requests (at most 10 s).
    pub async fn wait_for_requests(&self, count: usize) {
        for _ in 0..1000 {
            if self.requests() >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the JWKS server got {} requests, expected {count}",
            self.requests()
        );
    }
}

async fn answer(
    state: Arc<ServerState>,
    _request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let gate = state.gate.lock().expect("lock").clone();
    if let Some(gate) = gate {
        let _permit = gate.acquire().await;
    }
    let failing = state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    let mut response = if failing {
        Response::new(Full::new(Bytes::from_static(b"unavailable")))
    } else {
        let document = state.document.lock().expect("lock").clone();
        Response::new(Full::new(Bytes::from(document)))
    };
    if failing {
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    }
    Ok(response)
}
