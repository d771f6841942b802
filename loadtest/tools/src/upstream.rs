//! The minimal upstream app of the benchmark: every contender, and the `direct` baseline,
//! forwards to this same server, so differences come from the proxies alone.
//!
//! It returns a small JSON body with `x-bench-upstream: 1` for every request. The header
//! distinguishes a response from the app from one a proxy wrote itself. It also serves the benchmark's
//! JWKS at [`JWKS_PATH`], standing in for the token issuer, and counts the requests it served
//! at [`COUNT_PATH`], so a check can prove that a rejected request never reached it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Path of the JWKS document, as an issuer would publish it.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Returns the number of requests served, apart from this path and [`JWKS_PATH`].
pub const COUNT_PATH: &str = "/.bench/requests";
/// Marks every response that came from this app rather than from a proxy.
pub const UPSTREAM_HEADER: HeaderName = HeaderName::from_static("x-bench-upstream");

const BODY: &[u8] = br#"{"status":"ok"}"#;

struct State {
    jwks: Option<Bytes>,
    served: AtomicU64,
}

/// Serves connections from `listener` until the task is dropped. `jwks` is the document
/// served at [`JWKS_PATH`]; without one that path counts as an ordinary request.
pub async fn serve(listener: TcpListener, jwks: Option<Bytes>) {
    let state = Arc::new(State {
        jwks,
        served: AtomicU64::new(0),
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Usually out of file descriptors under many connections: pause, then retry.
                eprintln!("bench-upstream: accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(Arc::clone(&state), request));
            // Clients closing connections mid-request is normal at the end of a load run.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    if path == COUNT_PATH {
        let count = state.served.load(Ordering::Relaxed).to_string();
        return Ok(json_response(Bytes::from(count)));
    }
    if path == JWKS_PATH {
        if let Some(jwks) = &state.jwks {
            return Ok(json_response(jwks.clone()));
        }
    }
    state.served.fetch_add(1, Ordering::Relaxed);
    // Read the whole body before responding, as a real app would.
    let _ = request.into_body().collect().await;
    Ok(json_response(Bytes::from_static(BODY)))
}

fn json_response(body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(UPSTREAM_HEADER, HeaderValue::from_static("1"));
    response
}
