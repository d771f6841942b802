//! The accept loop every listener runs: plain TCP or TLS (tokio-rustls), HTTP/1.1 and HTTP/2
//! on the same port (HTTP/2 by ALPN on TLS and by prior knowledge on plain TCP), and the
//! drain that stops it.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::upstream::ProxyBody;

/// A client that opens a connection and never finishes the TLS handshake would otherwise
/// hold a task and a socket forever. A handshake on a working network takes far less.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A failing `accept` (usually out of file descriptors) would otherwise spin the loop. A
/// short pause lets connections close before the next try.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    /// The downstream's address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Request handler for one listener. It turns errors into responses itself, so a connection
/// ends only when the peer or a shutdown ends it.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        request: Request<Incoming>,
        connection: ConnectionInfo,
    ) -> impl Future<Output = Response<ProxyBody>> + Send;
}

/// A running accept loop.
pub struct ServerHandle {
    name: &'static str,
    local_addr: SocketAddr,
    stop: oneshot::Sender<Instant>,
    task: JoinHandle<usize>,
}

impl ServerHandle {
    /// Returns the address the listener is bound to (the real port when it was bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and starts a graceful close of every open connection, which lets
    /// in-flight requests finish. Waits until all have closed or `deadline` passes, then
    /// closes the rest and returns how many it closed that way.
    pub async fn drain(self, deadline: Instant) -> usize {
        // If the loop has already ended, the send fails and the join below returns at once.
        let _ = self.stop.send(deadline);
        match self.task.await {
            Ok(cut) => cut,
            Err(err) => {
                tracing::error!(listener = self.name, error = %err, "accept loop task failed");
                0
            }
        }
    }
}

/// Starts serving `listener` with `handler`, over TLS when `tls` is set. `name` labels logs.
pub fn spawn<H: Handler>(
    name: &'static str,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
) -> io::Result<ServerHandle> {
    let local_addr = listener.local_addr()?;
    let (stop, stop_rx) = oneshot::channel();
    let server = Server {
        name,
        tls,
        handler,
        http: http_builder(),
    };
    let task = tokio::spawn(server.run(listener, stop_rx));
    Ok(ServerHandle {
        name,
        local_addr,
        stop,
        task,
    })
}

struct Server<H> {
    name: &'static str,
    tls: Option<TlsAcceptor>,
    handler: Arc<H>,
    http: auto::Builder<TokioExecutor>,
}

impl<H: Handler> Server<H> {
    /// Accepts until `stop` fires, then drains. Returns the number of connections cut.
    async fn run(self, listener: TcpListener, mut stop: oneshot::Receiver<Instant>) -> usize {
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        let server = Arc::new(self);

        let deadline = loop {
            tokio::select! {
                deadline = &mut stop => {
                    // A dropped handle means no caller waits for a drain, so stop at once.
                    break deadline.unwrap_or_else(|_| Instant::now());
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let span = tracing::info_span!("connection", listener = server.name, %peer);
                        let connection = Arc::clone(&server).serve(stream, peer, graceful.watcher());
                        connections.spawn(connection.instrument(span));
                    }
                    Err(err) => {
                        tracing::warn!(listener = server.name, error = %err, "accept failed; retrying");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
                // Reaps finished connections so the set does not grow without bound.
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(err) = joined {
                        tracing::error!(listener = server.name, error = %err, "connection task panicked");
                    }
                }
            }
        };
        drop(listener);

        let open = connections.len();
        tracing::info!(
            listener = server.name,
            open_connections = open,
            "stopped accepting; draining"
        );
        let drained = tokio::time::timeout_at(deadline, async {
            graceful.shutdown().await;
            while connections.join_next().await.is_some() {}
        })
        .await;

        let cut = connections.len();
        connections.shutdown().await;
        if drained.is_err() && cut > 0 {
            tracing::warn!(
                listener = server.name,
                connections_cut = cut,
                "shutdown grace period ended; closed connections that were still open"
            );
        } else {
            tracing::info!(listener = server.name, "drained");
        }
        cut
    }

    async fn serve(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, watcher: Watcher) {
        // Latency matters more than packet count for request/response traffic.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        match &self.tls {
            None => {
                let info = ConnectionInfo { peer, tls: false };
                self.serve_http(stream, info, watcher).await;
            }
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(tls_stream)) => {
                        let info = ConnectionInfo { peer, tls: true };
                        self.serve_http(tls_stream, info, watcher).await;
                    }
                    // Logged at info: a rejected client certificate shows up here, and it is
                    // the first thing to look for when mutual TLS clients cannot connect.
                    Ok(Err(err)) => tracing::info!(error = %err, "TLS handshake failed"),
                    Err(_elapsed) => tracing::info!(
                        timeout = ?TLS_HANDSHAKE_TIMEOUT,
                        "TLS handshake timed out"
                    ),
                }
            }
        }
    }

    async fn serve_http<IO>(&self, io: IO, info: ConnectionInfo, watcher: Watcher)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let handler = Arc::clone(&self.handler);
        let service = service_fn(move |request| {
            let handler = Arc::clone(&handler);
            async move { Ok::<_, Infallible>(handler.handle(request, info).await) }
        });
        let connection = self.http.serve_connection(TokioIo::new(io), service);
        if let Err(err) = watcher.watch(connection).await {
            // Clients resetting or closing mid-request are routine, so this is not a warning.
            tracing::debug!(error = %err, "connection ended with an error");
        }
    }
}

/// HTTP/1.1 and HTTP/2 on one connection type, chosen by the client's first bytes.
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The timer turns on hyper 1's default HTTP/1 header read timeout (30 seconds), which
    // closes connections that send request headers too slowly.
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    builder
}
