//! `portcullis injector`: the mutating admission webhook server. It serves HTTPS (the API
//! server accepts nothing else from webhooks), HTTP/1.1 and HTTP/2, on one listener:
//! `POST /inject` for reviews and `GET /healthz` for the kubelet.
//!
//! The accept loop is this module's own rather than the sidecar's, because the webhook needs
//! none of the sidecar's listener options and should not change when they do.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::webhook::{self, VerdictOutcome};
use super::InjectOptions;
use crate::tls::{self, TlsError};

/// Path the `MutatingWebhookConfiguration` points at.
pub const REVIEW_PATH: &str = "/inject";

/// Largest review body accepted. The API server stores objects of at most about 1.5 MiB
/// (etcd's default request limit), and a review carries the object once for a creation, so
/// 4 MiB leaves room without letting one request take much memory.
const MAX_REVIEW_BYTES: usize = 4 * 1024 * 1024;

/// Listener address, certificate and injection options of the webhook server.
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

/// Time limit of a TLS handshake. Without it, a client that connects and never finishes the
/// handshake would hold a task and a socket. A handshake takes far less on any working network.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A failing `accept` (usually out of file descriptors) would otherwise spin the loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A running webhook server.
pub struct RunningInjector {
    local_addr: SocketAddr,
    stop: oneshot::Sender<Duration>,
    task: JoinHandle<()>,
}

impl RunningInjector {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and lets in-flight reviews finish for up to `grace`, then closes the
    /// remaining connections.
    pub async fn shutdown(self, grace: Duration) {
        // If the loop has already ended, the send fails and the join returns at once.
        let _ = self.stop.send(grace);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "injector accept loop failed");
        }
    }
}

/// Binds the listener and starts serving reviews in the current tokio runtime.
pub async fn start(config: InjectorConfig) -> Result<RunningInjector, InjectorError> {
    let tls = tls::server_config(&config.cert, &config.key, None)?;
    let bind_error = |source| InjectorError::Bind {
        addr: config.listen,
        source,
    };
    let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    let injector = Arc::new(Injector {
        options: config.options,
        acceptor: TlsAcceptor::from(Arc::new(tls)),
    });
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(accept_loop(listener, injector, stopped));
    tracing::info!(addr = %local_addr, path = REVIEW_PATH, "injector listening");
    Ok(RunningInjector {
        local_addr,
        stop,
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    injector: Arc<Injector>,
    mut stop: oneshot::Receiver<Duration>,
) {
    let graceful = GracefulShutdown::new();
    let grace = loop {
        tokio::select! {
            grace = &mut stop => break grace.unwrap_or_default(),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let connection = serve_connection(Arc::clone(&injector), stream, graceful.watcher());
                    let span = tracing::info_span!("webhook_connection", %peer);
                    tokio::spawn(tracing::Instrument::instrument(connection, span));
                }
                Err(error) => {
                    tracing::warn!(%error, "accept failed; retrying");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    };
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period ended; closed webhook connections still open");
    }
}

/// Completes the TLS handshake and serves HTTP/1.1 or HTTP/2 on one connection until the
/// client closes it or a shutdown ends it.
async fn serve_connection(injector: Arc<Injector>, stream: TcpStream, watcher: Watcher) {
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, injector.acceptor.accept(stream));
    let tls = match handshake.await {
        Ok(Ok(tls)) => tls,
        // Logged at info: a caBundle that does not match the certificate shows up here.
        Ok(Err(error)) => {
            tracing::info!(%error, "TLS handshake failed");
            return;
        }
        Err(_elapsed) => {
            tracing::info!(timeout = ?TLS_HANDSHAKE_TIMEOUT, "TLS handshake timed out");
            return;
        }
    };

    let handler = Arc::clone(&injector);
    let service = service_fn(move |request| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, Infallible>(handler.handle(request).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer turns on hyper's default HTTP/1 header read timeout (30 seconds).
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%error, "webhook connection ended with an error");
    }
}

struct Injector {
    options: InjectOptions,
    acceptor: TlsAcceptor,
}

impl Injector {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::POST, REVIEW_PATH) => self.review(request).await,
            (&Method::GET, "/healthz") => {
                let mut response = Response::new(Full::new(Bytes::from_static(b"ok\n")));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
            (method, path) => json_response(
                StatusCode::NOT_FOUND,
                &json!({
                    "error": "not_found",
                    "message": format!("no endpoint for {method} {path}; use POST {REVIEW_PATH} or GET /healthz"),
                }),
            ),
        }
    }

    async fn review(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
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
                tracing::warn!(%error, "invalid admission review");
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

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn bad_request(message: &str) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "error": "bad_request", "message": message }),
    )
}
