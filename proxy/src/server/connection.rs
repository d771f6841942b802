//! One downstream connection from accept to close: the TLS handshake, the choice of HTTP/1
//! or HTTP/2, hyper's connection with the listener's limits, the idle timeout, the drain,
//! and the response to a request head that the framing guard rejected.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::activity::{wait_quiet, Activity};
use super::service::{log_rejection, service, ServiceContext};
use super::sniff::{sniff, Prefixed, Protocol};
use super::{ConnectionInfo, Handler, ListenerSettings};
use crate::framing::{GuardState, HeadLimits, Http1Guard, Rejection};
use crate::metrics::Metrics;

/// Bound on writing a rejection and on closing, for a client that stops reading. It also
/// bounds an HTTP/2 graceful shutdown once no request is in flight, for a client that never
/// acknowledges the PING sent with the GOAWAY.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// After a rejection the client may still be sending the rest of its request. Reading and
/// discarding it for a moment keeps the kernel from responding to those bytes with a reset,
/// which could destroy the rejection before the client reads it.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_MAX_BYTES: usize = 1024 * 1024;

/// The listener state a connection shares.
pub(super) struct Listener<H> {
    pub name: &'static str,
    pub handler: Arc<H>,
    pub metrics: Metrics,
    pub settings: Arc<ListenerSettings>,
    /// Turns true when the listener drains.
    pub drain: watch::Receiver<bool>,
}

impl<H: Handler> Listener<H> {
    /// Serves one accepted connection until it closes.
    pub async fn serve(self, stream: TcpStream, peer: SocketAddr, accepted: Instant) {
        // Latency matters more than packet count for request/response traffic.
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
        let Some(acceptor) = self.settings.tls.clone() else {
            let info = ConnectionInfo { peer, tls: false };
            // Each branch is boxed, here and below, so a connection's task holds only the state
            // of the branch it takes. An idle plain connection's task is then about 5 KiB
            // instead of 18.5 KiB with room for the TLS and HTTP/2 states.
            return Box::pin(self.serve_io(stream, info, false, accepted)).await;
        };
        Box::pin(self.serve_tls(stream, peer, acceptor)).await;
    }

    /// Completes the TLS handshake within its timeout, then serves the connection. A separate
    /// function, boxed by the caller, because the handshake's state is larger than a whole
    /// plain connection's task.
    async fn serve_tls(self, stream: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor) {
        let handshake_timeout = self.settings.limits.tls_handshake_timeout;
        match tokio::time::timeout(handshake_timeout, Box::pin(acceptor.accept(stream))).await {
            Ok(Ok(tls_stream)) => {
                let http2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                let info = ConnectionInfo { peer, tls: true };
                // The head timeout starts once the handshake is done, so a slow handshake
                // and a slow head each get their own bound.
                Box::pin(self.serve_io(tls_stream, info, http2, Instant::now())).await;
            }
            // Logged at info: a rejected client certificate shows up here, and it is the
            // first thing to look for when mutual TLS clients cannot connect.
            Ok(Err(err)) => tracing::info!(%peer, error = %err, "TLS handshake failed"),
            Err(_elapsed) => {
                tracing::info!(%peer, timeout = ?handshake_timeout, "TLS handshake timed out; closing")
            }
        }
    }

    /// Serves a connection ready for HTTP. The first request head must be complete within
    /// the head timeout of `ready`: the accept, or the end of the TLS handshake.
    async fn serve_io<IO>(self, mut io: IO, info: ConnectionInfo, http2: bool, ready: Instant)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let head_deadline = ready + self.settings.limits.head_timeout;
        let (protocol, prefix) = if http2 {
            (Protocol::Http2, Vec::new())
        } else {
            match tokio::time::timeout_at(head_deadline, sniff(&mut io)).await {
                Ok(Ok(sniffed)) => sniffed,
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "reading the first bytes failed");
                    return;
                }
                Err(_elapsed) => {
                    tracing::debug!("no request arrived within the head timeout; closing");
                    return;
                }
            }
        };
        match protocol {
            Protocol::Http1 => Box::pin(self.serve_http1(io, prefix, info, head_deadline)).await,
            Protocol::Http2 => Box::pin(self.serve_http2(Prefixed::new(prefix, io), info)).await,
        }
    }

    async fn serve_http1<IO>(
        self,
        io: IO,
        prefix: Vec<u8>,
        info: ConnectionInfo,
        head_deadline: Instant,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limits = &self.settings.limits;
        let guard_state = Arc::new(GuardState::default());
        let head_limits = HeadLimits {
            max_head_bytes: limits.max_head_bytes,
            max_uri_bytes: limits.max_uri_bytes,
            max_headers: limits.max_headers,
            max_body_bytes: limits.max_body_bytes,
        };
        let guard = Http1Guard::new(
            io,
            &prefix,
            head_limits,
            limits.head_timeout,
            head_deadline,
            Arc::clone(&guard_state),
        );
        let activity = Activity::new();
        let context = Arc::new(ServiceContext {
            listener: self.name,
            handler: Arc::clone(&self.handler),
            metrics: self.metrics.clone(),
            info,
            guard: Some(Arc::clone(&guard_state)),
            max_body_bytes: None,
            activity: Arc::clone(&activity),
            requests: AtomicU64::new(0),
        });

        let mut builder = http1::Builder::new();
        builder
            // The guard reports end of stream right after a rejected head, when an earlier
            // response may still be in flight. Half-close support lets hyper finish it.
            .half_close(true)
            .keep_alive(true)
            // The guard times request heads itself and the idle timeout covers the time
            // between requests, so hyper's own header timer, which mixes the two, is off.
            .header_read_timeout(None)
            .max_headers(limits.max_headers)
            // hyper must be able to hold any head the guard passes.
            .max_buf_size(limits.max_head_bytes.max(8 * 1024) + 8 * 1024);
        let mut connection = builder.serve_connection(TokioIo::new(guard), service(context));

        let idle = pin!(wait_idle(
            activity,
            Some(Arc::clone(&guard_state)),
            limits.idle_timeout
        ));
        let drain = pin!(wait_drain(self.drain.clone()));
        let result = drive(idle, drain, |cx, shut_down| {
            if shut_down {
                Pin::new(&mut connection).graceful_shutdown();
            }
            connection.poll_without_shutdown(cx)
        })
        .await;
        if let Err(err) = result {
            // Clients resetting or closing mid-request are routine, so this is not a warning.
            tracing::debug!(error = %err, "HTTP/1 connection ended with an error");
        }

        let mut io = connection.into_parts().io.into_inner().into_inner();
        if let Some(rejection) = guard_state.head_rejection() {
            log_rejection(self.name, &self.metrics, info, &rejection);
            write_rejection(&mut io, &rejection).await;
        }
        close(io, guard_state.is_rejected()).await;
    }

    async fn serve_http2<IO>(self, io: IO, info: ConnectionInfo)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limits = &self.settings.limits;
        let activity = Activity::new();
        let context = Arc::new(ServiceContext {
            listener: self.name,
            handler: Arc::clone(&self.handler),
            metrics: self.metrics.clone(),
            info,
            guard: None,
            max_body_bytes: limits.max_body_bytes,
            activity: Arc::clone(&activity),
            requests: AtomicU64::new(0),
        });

        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .max_pending_accept_reset_streams(limits.http2_max_pending_resets)
            .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX));
        let mut connection = pin!(builder.serve_connection(TokioIo::new(io), service(context)));

        // h2 finishes a graceful shutdown only after the client acknowledges the PING it
        // sends with the GOAWAY, so a client that never does would keep the connection and
        // its buffers forever. Once the shutdown has started, the connection is dropped when
        // it has had no request in flight for CLOSE_TIMEOUT. The bound counts from the last
        // request rather than from the GOAWAY, so a request that raced the GOAWAY is not cut.
        // During a drain, the drain deadline still cuts such a request.
        let mut unacknowledged = pin!(wait_quiet(Arc::clone(&activity), None, CLOSE_TIMEOUT));
        let idle = pin!(wait_idle(activity, None, limits.idle_timeout));
        let drain = pin!(wait_drain(self.drain.clone()));
        let mut shutting_down = false;
        let result = drive(idle, drain, |cx, shut_down| {
            if shut_down {
                // Sends GOAWAY and lets the open streams finish.
                connection.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            if shutting_down && unacknowledged.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            connection.as_mut().poll(cx).map(Some)
        })
        .await;
        match result {
            Some(Ok(())) => {}
            Some(Err(err)) => {
                tracing::debug!(error = %err, "HTTP/2 connection ended with an error")
            }
            None => tracing::debug!(
                timeout = ?CLOSE_TIMEOUT,
                "HTTP/2 client did not finish the graceful shutdown; closing"
            ),
        }
    }
}

/// Polls a hyper connection through `poll_connection` until it finishes, asking it once to
/// shut down gracefully (the `bool` argument) when the listener drains or the connection
/// has been idle for the idle timeout.
async fn drive<T>(
    mut idle: Pin<&mut impl Future<Output = ()>>,
    mut drain: Pin<&mut impl Future<Output = ()>>,
    mut poll_connection: impl FnMut(&mut std::task::Context<'_>, bool) -> std::task::Poll<T>,
) -> T {
    let mut shutting_down = false;
    poll_fn(|cx| {
        let mut shut_down = false;
        if !shutting_down
            && (drain.as_mut().poll(cx).is_ready() || idle.as_mut().poll(cx).is_ready())
        {
            shutting_down = true;
            shut_down = true;
        }
        poll_connection(cx, shut_down)
    })
    .await
}

/// Completes when the listener starts draining (or is gone).
async fn wait_drain(mut drain: watch::Receiver<bool>) {
    // An error means the listener was dropped, which ends the connection as a drain would.
    let _ = drain.wait_for(|draining| *draining).await;
}

/// Completes once the connection has had no request in flight and no request head in
/// progress for `idle_timeout`.
async fn wait_idle(
    activity: Arc<Activity>,
    guard: Option<Arc<GuardState>>,
    idle_timeout: Duration,
) {
    wait_quiet(activity, guard, idle_timeout).await;
    tracing::debug!(timeout = ?idle_timeout, "connection idle; closing");
}

/// Writes the response to a rejected request head straight to the socket, because hyper
/// never saw that request.
async fn write_rejection<IO: AsyncWrite + Unpin>(io: &mut IO, rejection: &Rejection) {
    let body =
        serde_json::json!({ "error": rejection.label, "message": rejection.message }).to_string();
    let response = format!(
        "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        rejection.status,
        body.len()
    );
    let write = async {
        io.write_all(response.as_bytes()).await?;
        io.flush().await
    };
    match tokio::time::timeout(CLOSE_TIMEOUT, write).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::debug!(error = %err, "writing the rejection failed"),
        Err(_elapsed) => tracing::debug!("writing the rejection timed out"),
    }
}

/// Shuts the connection down. After a rejection it first reads and discards what the client
/// still sends, for at most [`LINGER_TIME`] and [`LINGER_MAX_BYTES`].
async fn close<IO: AsyncRead + AsyncWrite + Unpin>(mut io: IO, linger: bool) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown()).await;
    if !linger {
        return;
    }
    let discard = async {
        // On the heap: a buffer on the stack would enlarge every connection's future by its
        // size, although only rejected connections linger.
        let mut sink = vec![0u8; 4096];
        let mut total = 0;
        while total < LINGER_MAX_BYTES {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(count) => total += count,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, discard).await;
}
