//! The HTTP/1.1 accept loop: one task per connection, one log line per request, and a
//! graceful shutdown that finishes in-flight requests.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, info_span, warn, Instrument};

use crate::error::AppError;
use crate::http::ResponseBody;

/// How long shutdown waits for in-flight requests before it closes their connections.
/// Kubernetes sends SIGKILL 30 s after SIGTERM unless the pod sets
/// `terminationGracePeriodSeconds`, so the wait ends earlier and the app can still log what
/// it cut.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// Pause after a failed `accept`, for example when the process is out of file descriptors,
/// so the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The header in which the sidecar passes the verified token's subject to the app. The
/// request log line includes it, so each request can be traced to a caller.
const SUBJECT_HEADER: &str = "x-portcullis-subject";

/// A server started by [`serve`].
///
/// Dropping it also stops the server, but nothing awaits the drain: in-flight requests
/// finish in the background for as long as the runtime runs.
#[derive(Debug)]
pub struct RunningApp {
    local_addr: SocketAddr,
    stop: oneshot::Sender<()>,
    accept_loop: JoinHandle<()>,
}

impl RunningApp {
    /// Returns the address the server listens on, with the real port when port 0 was requested.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, waits up to [`DRAIN_TIMEOUT`] for in-flight requests to
    /// finish, closes the remaining connections, and returns.
    pub async fn shutdown(self) {
        // Sending fails only when the accept loop has already ended, which is the goal.
        let _ = self.stop.send(());
        if let Err(error) = self.accept_loop.await {
            warn!(%error, "accept loop ended abnormally");
        }
    }
}

/// Binds `listen` and serves HTTP/1.1 with `handler` in a background task.
///
/// `name` (such as `"order-app"`) labels the log lines. Each request is logged once, after
/// `handler` returns, with its method, path, status, duration and the sidecar's subject
/// header. Query strings and other headers are not logged.
pub async fn serve<H, F>(
    name: &'static str,
    listen: SocketAddr,
    handler: H,
) -> Result<RunningApp, AppError>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| AppError::Bind {
            addr: listen,
            source,
        })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| AppError::LocalAddr {
            addr: listen,
            source,
        })?;
    info!(app = name, %local_addr, "listening");

    let (stop, stop_received) = oneshot::channel();
    let accept_loop = tokio::spawn(
        accept_connections(listener, handler, stop_received)
            .instrument(info_span!("server", app = name)),
    );
    Ok(RunningApp {
        local_addr,
        stop,
        accept_loop,
    })
}

async fn accept_connections<H, F>(
    listener: TcpListener,
    handler: H,
    mut stop: oneshot::Receiver<()>,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();

    loop {
        tokio::select! {
            // Fires on `RunningApp::shutdown` and also when the `RunningApp` is dropped.
            _ = &mut stop => break,
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    warn!(%error, "connection task failed");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let connection = serve_connection(stream, handler.clone(), graceful.watcher());
                    connections.spawn(connection.instrument(info_span!("connection", %peer)));
                }
                Err(error) => {
                    warn!(%error, "failed to accept a connection; retrying");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }

    drop(listener);
    drain(graceful, connections).await;
}

/// Serves one connection until the peer closes it, an error ends it, or a graceful
/// shutdown lets its in-flight request finish.
async fn serve_connection<H, F>(stream: TcpStream, handler: H, graceful: Watcher)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handle_logged(request, handler).await) }
    });

    // With a timer set, hyper (1.x) closes a connection whose request headers do not
    // arrive within its default header read timeout of 30 s.
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = graceful.watch(connection).await {
        debug!(%error, "connection closed with an error");
    }
}

async fn handle_logged<H, F>(request: Request<Incoming>, handler: H) -> Response<ResponseBody>
where
    H: Fn(Request<Incoming>) -> F,
    F: Future<Output = Response<ResponseBody>>,
{
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let subject = request
        .headers()
        .get(SUBJECT_HEADER)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());

    let response = handler(request).await;

    info!(
        %method,
        path,
        status = response.status().as_u16(),
        duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        subject = subject.as_deref(),
        "request"
    );
    response
}

async fn drain(graceful: GracefulShutdown, mut connections: JoinSet<()>) {
    info!(
        open_connections = graceful.count(),
        "stopped accepting connections; waiting for in-flight requests"
    );

    match tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await {
        Ok(()) => info!("all connections closed"),
        Err(_) => {
            while connections.try_join_next().is_some() {}
            warn!(
                cut_connections = connections.len(),
                timeout_secs = DRAIN_TIMEOUT.as_secs(),
                "in-flight requests did not finish in time; closing their connections"
            );
        }
    }
    connections.shutdown().await;
    debug!("server stopped");
}
