//! The connector that puts a [`ResponseGuard`] on every upstream HTTP/1 connection, so
//! responses get the same framing checks as requests. HTTP/2 connections (negotiated by
//! ALPN, or h2c with prior knowledge) carry binary frames and pass unchanged.
//!
//! The connector can also cap the connections open at once: each holds a permit until it
//! closes. A request that finds every connection busy waits in hyper-util's pool until an
//! earlier request hands its connection back or a permit comes free.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::framing::{ResponseGuard, ResponseRejectionObserver};

/// Wraps connector `C`. `http2` marks a client that speaks h2c with prior knowledge.
#[derive(Clone)]
pub struct GuardedConnector<C> {
    inner: C,
    http2: bool,
    /// Learns the reason whenever a response guard rejects a response.
    observer: ResponseRejectionObserver,
    /// One permit per connection that may be open; `None` for no limit.
    slots: Option<Arc<Semaphore>>,
}

impl<C> GuardedConnector<C> {
    pub fn new(inner: C, http2: bool, observer: ResponseRejectionObserver) -> GuardedConnector<C> {
        GuardedConnector {
            inner,
            http2,
            observer,
            slots: None,
        }
    }

    /// Allows at most `max` connections open at once (`None`: no limit).
    pub fn with_max_connections(mut self, max: Option<usize>) -> GuardedConnector<C> {
        self.slots = max.map(|max| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))));
        self
    }
}

impl<C: fmt::Debug> fmt::Debug for GuardedConnector<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardedConnector")
            .field("inner", &self.inner)
            .field("http2", &self.http2)
            .finish_non_exhaustive()
    }
}

type ConnectFuture<T, E> = Pin<Box<dyn Future<Output = Result<GuardedStream<T>, E>> + Send>>;

impl<C, T> tower_service::Service<Uri> for GuardedConnector<C>
where
    C: tower_service::Service<Uri, Response = T>,
    C::Future: Send + 'static,
    T: Read + Write + Connection + Unpin + Send + 'static,
{
    type Response = GuardedStream<T>;
    type Error = C::Error;
    type Future = ConnectFuture<T, C::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let http2 = self.http2;
        let observer = Arc::clone(&self.observer);
        let slots = self.slots.clone();
        // hyper-util has just made the inner connector ready, so its future is created here;
        // like every future it does nothing until polled, which waits for a permit.
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let slot = match slots {
                // `acquire_owned` fails only on a closed semaphore, and this one is never
                // closed; without a permit the connection would simply not be counted.
                Some(slots) => slots.acquire_owned().await.ok(),
                None => None,
            };
            let stream = connecting.await?;
            let io = if http2 || stream.connected().is_negotiated_h2() {
                GuardedIo::Http2(stream)
            } else {
                let guard = ResponseGuard::new(TokioIo::new(stream), Some(observer));
                GuardedIo::Http1(Box::new(TokioIo::new(guard)))
            };
            Ok(GuardedStream { io, _slot: slot })
        })
    }
}

/// An upstream connection and, when connections are capped, the permit it holds until it
/// closes.
pub struct GuardedStream<T> {
    io: GuardedIo<T>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl<T: Connection> Connection for GuardedStream<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read + Write + Unpin> Read for GuardedStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: Read + Write + Unpin> Write for GuardedStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The bytes of an upstream connection: HTTP/1 behind a [`ResponseGuard`] (boxed, being the
/// larger variant), or HTTP/2 as it is.
enum GuardedIo<T> {
    Http1(Box<TokioIo<ResponseGuard<TokioIo<T>>>>),
    Http2(T),
}

impl<T: Connection> Connection for GuardedIo<T> {
    fn connected(&self) -> Connected {
        match self {
            GuardedIo::Http1(stream) => stream.inner().get_ref().inner().connected(),
            GuardedIo::Http2(stream) => stream.connected(),
        }
    }
}

impl<T: Read + Write + Unpin> Read for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            GuardedIo::Http1(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            GuardedIo::Http2(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl<T: Read + Write + Unpin> Write for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            GuardedIo::Http1(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            GuardedIo::Http2(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            GuardedIo::Http1(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
            GuardedIo::Http2(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            GuardedIo::Http1(stream) => stream.is_write_vectored(),
            GuardedIo::Http2(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            GuardedIo::Http1(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            GuardedIo::Http2(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            GuardedIo::Http1(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            GuardedIo::Http2(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
