//! The listener: accepts connections, runs TLS and HTTP/1.1 on each, and drains them on
//! shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, error, info, warn, Instrument};

use crate::routes::App;

/// Time a client has to complete the TLS handshake before the connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a client has to send a request's headers before the connection is closed, so idle
/// or slow clients cannot hold connections open.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Maximum number of open connections. Token requests are short, so this is far above
/// normal load, and it bounds the memory a connection flood can take.
const MAX_CONNECTIONS: usize = 1024;

/// Time in-flight requests get to finish after shutdown starts. A token request needs at
/// most two Argon2 verifications and one signature, an estimated fraction of a second, so
/// requests still running after this are stuck and are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Pause after a failed `accept`, which usually means the process ran out of file
/// descriptors, so the loop does not spin while none are free.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Minimum interval between warnings about connections rejected at [`MAX_CONNECTIONS`].
const REJECT_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// A started token service.
///
/// Dropping it without [`RunningSts::shutdown`] also stops the listener, but without
/// waiting for in-flight requests.
#[derive(Debug)]
pub struct RunningSts {
    local_addr: SocketAddr,
    issuer: String,
    ca_cert_path: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningSts {
    pub(crate) fn new(
        local_addr: SocketAddr,
        issuer: String,
        ca_cert_path: Option<PathBuf>,
        listener: TcpListener,
        app: Arc<App>,
        tls: Option<TlsAcceptor>,
    ) -> RunningSts {
        let (shutdown, shutdown_signal) = watch::channel(false);
        let task = tokio::spawn(serve(listener, app, tls, shutdown_signal));
        RunningSts {
            local_addr,
            issuer,
            ca_cert_path,
            shutdown,
            task,
        }
    }

    /// Returns the address the listener is bound to, with the actual port when the
    /// configuration asked for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Returns the issuer URL, the `iss` claim of every token.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Returns the generated CA certificate that clients should trust, or `None` when the
    /// configuration supplies its own certificate files or disables TLS.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert_path.as_deref()
    }

    /// Stops accepting connections, lets in-flight requests finish for up to ten seconds,
    /// closes the remaining connections, and returns.
    pub async fn shutdown(self) {
        // Sending fails only when the server task already returned, and then nothing is left to stop.
        let _ = self.shutdown.send(true);
        if let Err(error) = self.task.await {
            warn!(%error, "the server task failed during shutdown");
        }
    }
}

async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let mut rejected: u64 = 0;
    let mut last_reject_warning: Option<Instant> = None;

    loop {
        tokio::select! {
            // A dropped sender also means stop.
            _ = shutdown.changed() => break,
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                log_panic(finished);
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "failed to accept a connection");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                        continue;
                    }
                };
                if connections.len() >= MAX_CONNECTIONS {
                    rejected += 1;
                    if last_reject_warning.is_none_or(|at| at.elapsed() >= REJECT_WARNING_INTERVAL) {
                        warn!(rejected, limit = MAX_CONNECTIONS, "rejected connections over the connection limit");
                        rejected = 0;
                        last_reject_warning = Some(Instant::now());
                    }
                    continue;
                }
                let span = tracing::debug_span!("connection", client.addr = %peer);
                connections.spawn(
                    serve_connection(stream, Arc::clone(&app), tls.clone(), shutdown.clone())
                        .instrument(span),
                );
            }
        }
    }
    drop(listener);

    info!(
        open_connections = connections.len(),
        "shutting down: stopped accepting connections"
    );
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(finished) = connections.join_next().await {
            log_panic(finished);
        }
    })
    .await;
    if drained.is_err() {
        warn!(
            cut_connections = connections.len(),
            grace_secs = SHUTDOWN_GRACE.as_secs(),
            "shutdown grace period ended, closing connections with requests still in flight"
        );
        connections.shutdown().await;
    }
    info!("token service stopped");
}

fn log_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(join_error) = finished {
        if join_error.is_panic() {
            error!(error = %join_error, "a connection task panicked");
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    app: Arc<App>,
    tls: Option<TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%error, "failed to disable Nagle's algorithm");
    }
    let Some(acceptor) = tls else {
        serve_http(TokioIo::new(stream), app, shutdown).await;
        return;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_http(TokioIo::new(stream), app, shutdown).await,
        Ok(Err(error)) => debug!(%error, "TLS handshake failed"),
        Err(_) => debug!(
            timeout_secs = HANDSHAKE_TIMEOUT.as_secs(),
            "TLS handshake timed out"
        ),
    }
}

async fn serve_http<I>(io: I, app: Arc<App>, mut shutdown: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.handle(request).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(io, service);
    tokio::pin!(connection);

    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.changed() => {
            // Finishes the request in flight, if any, then closes the connection.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        debug!(%error, "connection ended with an error");
    }
}
