//! The accept loop every listener runs: plain TCP or TLS (tokio-rustls), HTTP/1.1 and HTTP/2
//! on the same port, a cap on open connections, settings a reload can replace, and the drain
//! that stops it. HTTP/2 is chosen by ALPN on TLS and by prior knowledge otherwise.
//!
//! HTTP/1 connections pass through the strict framing guard ([`crate::framing`]) before
//! hyper parses them. [`connection`] serves each accepted connection.

mod activity;
mod connection;
mod service;
mod sniff;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::config::ListenerLimits;
use crate::metrics::Metrics;
use crate::upstream::{ProxyBody, RequestBody};

/// A failing `accept` (usually out of file descriptors) would otherwise spin the loop. A
/// short pause lets connections close before the next try.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// While connections are refused for being over the limit, one warning per this interval
/// logs how many were refused, instead of one line per connection.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Sent on a plain connection refused for being over the limit.
const REFUSED_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nretry-after: 1\r\n\r\n";
/// After the 503, a refused connection reads and discards what the client sends for at most
/// this long and this many bytes. Closing a socket with unread bytes makes the kernel send a
/// reset, which can destroy the 503 before the client has read it.
const REFUSAL_LINGER_TIME: Duration = Duration::from_secs(1);
const REFUSAL_LINGER_MAX_BYTES: usize = 64 * 1024;
/// Refused connections that may linger at once. Beyond it a refused connection gets its 503
/// and is closed at once, so a flood of connections cannot pile up lingering tasks.
const MAX_LINGERING_REFUSALS: usize = 256;

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionInfo {
    /// The downstream's address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Request handler for one listener. It turns errors into responses itself, so a connection
/// ends only when the peer, a limit or a shutdown ends it.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        request: Request<RequestBody>,
        connection: ConnectionInfo,
    ) -> impl Future<Output = Response<ProxyBody>> + Send;
}

/// What a listener applies to the connections it accepts. [`ServerHandle::update`] replaces
/// it for connections accepted afterwards; open connections keep the settings they started
/// with.
#[derive(Clone)]
pub struct ListenerSettings {
    pub limits: ListenerLimits,
    /// Serves TLS when set.
    pub tls: Option<TlsAcceptor>,
}

/// A running accept loop.
pub struct ServerHandle {
    name: &'static str,
    local_addr: SocketAddr,
    settings: watch::Sender<Arc<ListenerSettings>>,
    stop: oneshot::Sender<Instant>,
    task: JoinHandle<usize>,
}

impl ServerHandle {
    /// Returns the address the listener is bound to (the real port when it was bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replaces the settings for connections accepted from now on.
    pub fn update(&self, settings: ListenerSettings) {
        self.settings.send_replace(Arc::new(settings));
    }

    /// Returns whether the listener serves TLS.
    pub fn is_tls(&self) -> bool {
        self.settings.borrow().tls.is_some()
    }

    /// Stops accepting and starts a graceful close of every open connection: idle HTTP/1
    /// connections close, in-flight HTTP/1 responses carry `Connection: close`, and HTTP/2
    /// connections get GOAWAY. Waits until all have closed or `deadline` passes, then closes
    /// the rest and returns how many it closed that way.
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

/// Starts serving `listener` with `handler` and `settings`. `name` labels logs and the
/// `listener` label of the metrics it counts in `metrics`.
pub fn spawn<H: Handler>(
    name: &'static str,
    listener: TcpListener,
    settings: ListenerSettings,
    handler: Arc<H>,
    metrics: Metrics,
) -> io::Result<ServerHandle> {
    let local_addr = listener.local_addr()?;
    let (stop, stop_rx) = oneshot::channel();
    let (settings, settings_rx) = watch::channel(Arc::new(settings));
    let server = Server {
        name,
        handler,
        metrics,
        settings: settings_rx,
        open: Arc::new(AtomicUsize::new(0)),
        refusals: Refusals::default(),
        lingering: Arc::new(Semaphore::new(MAX_LINGERING_REFUSALS)),
    };
    let task = tokio::spawn(server.run(listener, stop_rx));
    Ok(ServerHandle {
        name,
        local_addr,
        settings,
        stop,
        task,
    })
}

struct Server<H> {
    name: &'static str,
    handler: Arc<H>,
    metrics: Metrics,
    settings: watch::Receiver<Arc<ListenerSettings>>,
    /// Connections open now.
    open: Arc<AtomicUsize>,
    refusals: Refusals,
    /// Permits for refused connections that are still lingering.
    lingering: Arc<Semaphore>,
}

impl<H: Handler> Server<H> {
    /// Accepts until `stop` fires, then drains. Returns the number of connections cut.
    async fn run(mut self, listener: TcpListener, mut stop: oneshot::Receiver<Instant>) -> usize {
        let (drain, _) = watch::channel(false);
        let mut connections = JoinSet::new();

        let deadline = loop {
            tokio::select! {
                deadline = &mut stop => {
                    // A dropped handle means no caller waits for a drain, so stop at once.
                    break deadline.unwrap_or_else(|_| Instant::now());
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let settings = Arc::clone(&self.settings.borrow());
                        if self.open.load(Ordering::Relaxed) >= settings.limits.max_connections {
                            self.refuse(stream, &settings);
                            continue;
                        }
                        let slot = OpenSlot::take(&self.open);
                        let connection = connection::Listener {
                            name: self.name,
                            handler: Arc::clone(&self.handler),
                            metrics: self.metrics.clone(),
                            settings,
                            drain: drain.subscribe(),
                        };
                        // A debug span: at info level, a span per connection would cost about
                        // 1 KiB each, and the info lines of a connection name the peer anyway.
                        let span = tracing::debug_span!("connection", listener = self.name, %peer);
                        let accepted = Instant::now();
                        connections.spawn(
                            async move {
                                let _slot = slot;
                                connection.serve(stream, peer, accepted).await;
                            }
                            .instrument(span),
                        );
                    }
                    Err(err) => {
                        tracing::warn!(listener = self.name, error = %err, "accept failed; retrying");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
                // Reaps finished connections so the set does not grow without bound.
                Some(joined) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(err) = joined {
                        tracing::error!(listener = self.name, error = %err, "connection task panicked");
                    }
                }
            }
        };
        // Connections learn of the drain before the port closes, so a response that a client
        // receives after its next connection was refused already carries `Connection: close`.
        drain.send_replace(true);
        drop(listener);

        tracing::info!(
            listener = self.name,
            open_connections = connections.len(),
            "stopped accepting; draining"
        );
        let drained = tokio::time::timeout_at(deadline, async {
            while connections.join_next().await.is_some() {}
        })
        .await;

        let cut = connections.len();
        connections.shutdown().await;
        if drained.is_err() && cut > 0 {
            tracing::warn!(
                listener = self.name,
                connections_cut = cut,
                "shutdown grace period ended; closed connections that were still open"
            );
        } else {
            tracing::info!(listener = self.name, "drained");
        }
        cut
    }

    /// Refuses a connection over the limit without counting it against the limit. A plain
    /// connection gets a 503 with `Connection: close` (see [`linger_refused`]); TLS
    /// connections are closed without a handshake, which would cost more than the limit
    /// saves.
    fn refuse(&mut self, stream: TcpStream, settings: &ListenerSettings) {
        self.metrics
            .connections_refused
            .with_label_values(&[self.name])
            .inc();
        self.refusals
            .count(self.name, settings.limits.max_connections);
        if settings.tls.is_some() {
            return;
        }
        match Arc::clone(&self.lingering).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    linger_refused(stream).await;
                    drop(permit);
                });
            }
            Err(_) => {
                // Best effort: a full socket buffer or a closed peer just means no 503.
                let _ = stream.try_write(REFUSED_RESPONSE);
            }
        }
    }
}

/// Writes the 503 to a refused connection and shuts down the write side. It then reads and
/// discards what the client sends until it closes, for at most [`REFUSAL_LINGER_TIME`] and
/// [`REFUSAL_LINGER_MAX_BYTES`], so a client that sent its request first still reads the
/// whole 503 instead of a reset.
async fn linger_refused(mut stream: TcpStream) {
    let refuse = async {
        stream.write_all(REFUSED_RESPONSE).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < REFUSAL_LINGER_MAX_BYTES {
            match stream.read(&mut sink).await? {
                0 => break,
                count => total += count,
            }
        }
        Ok::<(), io::Error>(())
    };
    match tokio::time::timeout(REFUSAL_LINGER_TIME, refuse).await {
        Ok(Ok(())) | Err(_) => {}
        // A client that resets or closes first is routine.
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "refusing a connection over the limit failed")
        }
    }
}

/// Counts refused connections and logs them at most once per [`REFUSAL_LOG_INTERVAL`].
#[derive(Default)]
struct Refusals {
    unlogged: u64,
    last_log: Option<Instant>,
}

impl Refusals {
    fn count(&mut self, listener: &'static str, max_connections: usize) {
        self.unlogged += 1;
        let due = self
            .last_log
            .is_none_or(|last| last.elapsed() >= REFUSAL_LOG_INTERVAL);
        if due {
            tracing::warn!(
                listener,
                max_connections,
                refused = self.unlogged,
                "connection limit reached; refusing new connections (raise limits.max_connections if this is expected load)"
            );
            self.unlogged = 0;
            self.last_log = Some(Instant::now());
        }
    }
}

/// One open connection counted against the limit until dropped.
struct OpenSlot(Arc<AtomicUsize>);

impl OpenSlot {
    fn take(open: &Arc<AtomicUsize>) -> OpenSlot {
        open.fetch_add(1, Ordering::Relaxed);
        OpenSlot(Arc::clone(open))
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
