//! `portcullis injector`: the mutating admission webhook server. It serves HTTPS (the API
//! server accepts nothing else from webhooks) on one listener: `POST /inject` for reviews
//! and `GET /healthz` for the kubelet.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::webhook::{self, VerdictOutcome};
use super::InjectOptions;
use crate::server::{self, ConnectionInfo, Handler, ServerHandle};
use crate::tls::{self, TlsError};
use crate::upstream::{full_body, json_response, ProxyBody};

/// Path the `MutatingWebhookConfiguration` points at.
pub const REVIEW_PATH: &str = "/inject";

/// Largest review body accepted. The API server stores objects of at most about 1.5 MiB
/// (etcd's default request limit), and a review carries the object once for a creation, so
/// 4 MiB leaves room without letting one request take much memory.
const MAX_REVIEW_BYTES: usize = 4 * 1024 * 1024;

/// Where and how the webhook serves.
#[derive(Debug, Clone)]
pub struct InjectorConfig {
    pub listen: SocketAddr,
    /// PEM certificate chain, valid for the webhook Service's DNS name
    /// (`NAME.NAMESPACE.svc`).
    pub cert: PathBuf,
    pub key: PathBuf,
    pub options: InjectOptions,
}

/// A failure to start the webhook server.
#[derive(Debug, thiserror::Error)]
pub enum InjectorError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}; choose a free address with --listen")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running webhook server.
pub struct RunningInjector {
    handle: ServerHandle,
}

impl RunningInjector {
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Stops accepting and lets in-flight reviews finish for up to `grace`.
    pub async fn shutdown(self, grace: Duration) {
        let cut = self.handle.drain(tokio::time::Instant::now() + grace).await;
        if cut > 0 {
            tracing::warn!(
                connections_cut = cut,
                "closed webhook connections at shutdown"
            );
        }
    }
}

/// Binds the listener and starts serving reviews in the current tokio runtime.
pub async fn start(config: InjectorConfig) -> Result<RunningInjector, InjectorError> {
    let tls = tls::server_config(&config.cert, &config.key, None)?;
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| InjectorError::Bind {
                addr: config.listen,
                source,
            })?;
    let handler = Arc::new(Injector {
        options: config.options,
    });
    let handle = server::spawn(
        "injector",
        listener,
        Some(TlsAcceptor::from(Arc::new(tls))),
        handler,
    )
    .map_err(|source| InjectorError::Bind {
        addr: config.listen,
        source,
    })?;
    tracing::info!(addr = %handle.local_addr(), path = REVIEW_PATH, "injector listening");
    Ok(RunningInjector { handle })
}

struct Injector {
    options: InjectOptions,
}

impl Handler for Injector {
    async fn handle(
        &self,
        request: Request<Incoming>,
        _connection: ConnectionInfo,
    ) -> Response<ProxyBody> {
        match (request.method(), request.uri().path()) {
            (&Method::POST, REVIEW_PATH) => self.review(request).await,
            (&Method::GET, "/healthz") => {
                let mut response = Response::new(full_body("ok\n"));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
            (_, path) => json_response(
                StatusCode::NOT_FOUND,
                &json!({
                    "error": "not_found",
                    "message": format!("no endpoint for {} {path}; use POST {REVIEW_PATH} or GET /healthz", request.method()),
                }),
            ),
        }
    }
}

impl Injector {
    async fn review(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let body = match read_body(request).await {
            Ok(body) => body,
            Err(message) => return bad_request(&message),
        };
        match webhook::review(&body, &self.options) {
            Ok((response, verdict)) => {
                match &verdict.outcome {
                    VerdictOutcome::Rejected(message) => tracing::warn!(
                        uid = %verdict.uid,
                        pod = %verdict.pod,
                        reason = %message,
                        "rejected pod: invalid injection annotations"
                    ),
                    outcome => tracing::info!(
                        uid = %verdict.uid,
                        pod = %verdict.pod,
                        outcome = ?outcome,
                        "reviewed pod"
                    ),
                }
                json_response(StatusCode::OK, &response)
            }
            Err(error) => {
                tracing::warn!(error = %error, "invalid admission review");
                bad_request(&error.to_string())
            }
        }
    }
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, String> {
    match Limited::new(request.into_body(), MAX_REVIEW_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(format!(
            "cannot read the review body (at most {MAX_REVIEW_BYTES} bytes): {error}"
        )),
    }
}

fn bad_request(message: &str) -> Response<ProxyBody> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": "bad_request", "message": message }),
    )
}
