//! The connector that puts a [`ResponseGuard`] on every upstream HTTP/1 connection, so
//! responses get the same framing checks as requests. HTTP/2 connections (negotiated by
//! ALPN, or h2c with prior knowledge) carry binary frames and pass unchanged.

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

use crate::framing::{ResponseGuard, ResponseRejectionObserver};

/// Wraps connector `C`. `http2` marks a client that speaks h2c with prior knowledge.
#[derive(Clone)]
pub struct GuardedConnector<C> {
    inner: C,
    http2: bool,
    /// Learns the reason whenever a response guard rejects a response.
    observer: ResponseRejectionObserver,
}

impl<C> GuardedConnector<C> {
    pub fn new(inner: C, http2: bool, observer: ResponseRejectionObserver) -> GuardedConnector<C> {
        GuardedConnector {
            inner,
            http2,
            observer,
        }
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
        let connecting = self.inner.call(uri);
        let http2 = self.http2;
        let observer = Arc::clone(&self.observer);
        Box::pin(async move {
            let stream = connecting.await?;
            if http2 || stream.connected().is_negotiated_h2() {
                return Ok(GuardedStream::Http2(stream));
            }
            let guard = ResponseGuard::new(TokioIo::new(stream), Some(observer));
            Ok(GuardedStream::Http1(Box::new(TokioIo::new(guard))))
        })
    }
}

/// An upstream connection: HTTP/1 behind a [`ResponseGuard`] (boxed, being the larger
/// variant), or HTTP/2 as it is.
pub enum GuardedStream<T> {
    Http1(Box<TokioIo<ResponseGuard<TokioIo<T>>>>),
    Http2(T),
}

impl<T: Connection> Connection for GuardedStream<T> {
    fn connected(&self) -> Connected {
        match self {
            GuardedStream::Http1(stream) => stream.inner().get_ref().inner().connected(),
            GuardedStream::Http2(stream) => stream.connected(),
        }
    }
}

impl<T: Read + Write + Unpin> Read for GuardedStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            GuardedStream::Http1(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            GuardedStream::Http2(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl<T: Read + Write + Unpin> Write for GuardedStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            GuardedStream::Http1(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            GuardedStream::Http2(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            GuardedStream::Http1(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
            GuardedStream::Http2(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            GuardedStream::Http1(stream) => stream.is_write_vectored(),
            GuardedStream::Http2(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            GuardedStream::Http1(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            GuardedStream::Http2(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            GuardedStream::Http1(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            GuardedStream::Http2(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
