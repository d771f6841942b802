//! [`Http1Guard`]: the IO wrapper that applies the framing checks between the socket and
//! hyper, and the [`GuardState`] it shares with the connection that owns it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::{
    BodyFraming, ChunkProgress, ChunkedBody, HeadLimits, HeadParse, HeadParser, Rejection,
};

/// Bytes read from the socket at a time while a head or framing line is being checked.
const READ_CHUNK: usize = 8 * 1024;

/// Position of a violation in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionPoint {
    /// In a request head. hyper never saw that request, so the connection owner must send
    /// the response.
    Head,
    /// In the body of the `request`-th request of the connection (counting from 1). hyper
    /// has its head and reads a body that ends early.
    Body { request: u64 },
}

/// Findings of the guard, shared with the connection that owns it.
#[derive(Debug, Default)]
pub struct GuardState {
    rejection: Mutex<Option<(RejectionPoint, Rejection)>>,
    heads_passed: AtomicU64,
    head_in_progress: AtomicBool,
}

impl GuardState {
    /// Returns the violation in a request head, if the guard found one.
    pub fn head_rejection(&self) -> Option<Rejection> {
        match self.rejection() {
            Some((RejectionPoint::Head, rejection)) => Some(rejection),
            _ => None,
        }
    }

    /// Returns the violation in the body of the `request`-th request, if there is one.
    pub fn body_rejection(&self, request: u64) -> Option<Rejection> {
        match self.rejection() {
            Some((RejectionPoint::Body { request: found }, rejection)) if found == request => {
                Some(rejection)
            }
            _ => None,
        }
    }

    /// Returns whether the guard has stopped the connection.
    pub fn is_rejected(&self) -> bool {
        self.rejection().is_some()
    }

    /// Returns whether part of a request head has arrived but not the whole head.
    pub fn head_in_progress(&self) -> bool {
        self.head_in_progress.load(Ordering::Relaxed)
    }

    fn rejection(&self) -> Option<(RejectionPoint, Rejection)> {
        // A poisoned lock means a thread panicked while holding it; the value is still the
        // last one written, which is all a reader needs.
        let slot = self.rejection.lock().unwrap_or_else(|err| err.into_inner());
        slot.clone()
    }

    /// Records the first violation; later ones are ignored because the stream ends there.
    fn reject(&self, point: RejectionPoint, rejection: Rejection) {
        let mut slot = self.rejection.lock().unwrap_or_else(|err| err.into_inner());
        slot.get_or_insert((point, rejection));
        self.head_in_progress.store(false, Ordering::Relaxed);
    }
}

enum Phase {
    Head(HeadParser),
    Length {
        remaining: u64,
        close: bool,
    },
    Chunked {
        body: ChunkedBody,
        close: bool,
    },
    /// No more bytes go to hyper: the client closed, asked to close, or broke the rules.
    Ended,
}

/// Wraps the downstream side of an HTTP/1 connection. Reads return only bytes that belong to
/// request heads and bodies that passed the framing checks. At the first violation the guard
/// records it in its [`GuardState`] and reports end of stream. Writes pass through.
pub struct Http1Guard<IO> {
    inner: IO,
    limits: HeadLimits,
    head_timeout: Duration,
    /// Bytes read from the socket and not yet returned to the reader.
    buf: BytesMut,
    /// How many bytes at the front of `buf` passed the checks.
    ready: usize,
    phase: Phase,
    /// When the head in progress must be complete.
    head_deadline: Option<Pin<Box<Sleep>>>,
    state: Arc<GuardState>,
}

impl<IO> Http1Guard<IO> {
    /// Wraps `inner`, whose first bytes `prefix` were already read from it. The first head
    /// must be complete by `first_deadline`; each later head gets `head_timeout` from its
    /// first byte.
    pub fn new(
        inner: IO,
        prefix: &[u8],
        limits: HeadLimits,
        head_timeout: Duration,
        first_deadline: Instant,
        state: Arc<GuardState>,
    ) -> Http1Guard<IO> {
        let mut guard = Http1Guard {
            inner,
            limits,
            head_timeout,
            buf: BytesMut::from(prefix),
            ready: 0,
            phase: Phase::Head(HeadParser::new(limits)),
            head_deadline: Some(Box::pin(tokio::time::sleep_until(first_deadline))),
            state,
        };
        guard.process();
        guard
    }

    /// Returns the wrapped stream.
    pub fn into_inner(self) -> IO {
        self.inner
    }

    /// Checks the bytes in `buf` after the `ready` ones, as far as they go.
    fn process(&mut self) {
        loop {
            let pending = &self.buf[self.ready..];
            if pending.is_empty() && !matches!(self.phase, Phase::Ended) {
                return;
            }
            match &mut self.phase {
                Phase::Ended => {
                    self.buf.truncate(self.ready);
                    return;
                }
                Phase::Head(parser) => {
                    self.state.head_in_progress.store(true, Ordering::Relaxed);
                    if self.head_deadline.is_none() {
                        self.head_deadline = Some(Box::pin(tokio::time::sleep(self.head_timeout)));
                    }
                    match parser.feed(pending) {
                        HeadParse::Incomplete => return,
                        HeadParse::Rejected(rejection) => {
                            self.reject(RejectionPoint::Head, rejection)
                        }
                        HeadParse::Complete(head) => {
                            self.ready += head.len;
                            self.head_deadline = None;
                            self.state.heads_passed.fetch_add(1, Ordering::Relaxed);
                            self.state.head_in_progress.store(false, Ordering::Relaxed);
                            self.phase = match head.framing {
                                // Request heads never declare a body that runs until close.
                                BodyFraming::None | BodyFraming::UntilClose => {
                                    self.after_message(head.close)
                                }
                                BodyFraming::Length(remaining) => Phase::Length {
                                    remaining,
                                    close: head.close,
                                },
                                BodyFraming::Chunked => Phase::Chunked {
                                    body: ChunkedBody::new(self.limits),
                                    close: head.close,
                                },
                            };
                        }
                    }
                }
                Phase::Length { remaining, close } => {
                    let taken = (*remaining).min(pending.len() as u64);
                    *remaining -= taken;
                    let close = *close;
                    // `taken` is at most `pending.len()`, a usize.
                    self.ready += taken as usize;
                    if *remaining == 0 {
                        self.phase = self.after_message(close);
                    }
                }
                Phase::Chunked { body, close } => match body.feed(pending) {
                    Ok(ChunkProgress::NeedMore) => {
                        self.ready = self.buf.len();
                        return;
                    }
                    Ok(ChunkProgress::Done(count)) => {
                        let close = *close;
                        self.ready += count;
                        self.phase = self.after_message(close);
                    }
                    Err(rejection) => {
                        let request = self.state.heads_passed.load(Ordering::Relaxed);
                        self.reject(RejectionPoint::Body { request }, rejection);
                    }
                },
            }
        }
    }

    /// Returns the phase after a complete message: the next head, or the end when the request
    /// asked to close the connection.
    fn after_message(&self, close: bool) -> Phase {
        if close {
            Phase::Ended
        } else {
            Phase::Head(HeadParser::new(self.limits))
        }
    }

    fn reject(&mut self, point: RejectionPoint, rejection: Rejection) {
        tracing::debug!(?point, status = rejection.status.as_u16(), reason = rejection.label, message = %rejection.message, "request framing rejected");
        self.state.reject(point, rejection);
        self.phase = Phase::Ended;
        self.head_deadline = None;
    }

    /// Returns how many body bytes may be read straight into the caller's buffer: the rest of
    /// a `Content-Length` body or of the current chunk.
    fn direct_read_limit(&self) -> u64 {
        match &self.phase {
            Phase::Length { remaining, .. } => *remaining,
            Phase::Chunked { body, .. } => body.data_remaining(),
            _ => 0,
        }
    }

    /// Accounts for body bytes read straight into the caller's buffer.
    fn consume_body(&mut self, count: u64) {
        match &mut self.phase {
            Phase::Length { remaining, close } => {
                *remaining = remaining.saturating_sub(count);
                if *remaining == 0 {
                    let close = *close;
                    self.phase = self.after_message(close);
                }
            }
            Phase::Chunked { body, .. } => body.consume_data(count),
            _ => {}
        }
    }

    /// Returns whether the head in progress has run out of time, registering the waker when
    /// it has not.
    fn head_timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let in_head = matches!(self.phase, Phase::Head(_));
        match &mut self.head_deadline {
            Some(deadline) if in_head => deadline.as_mut().poll(cx).is_ready(),
            _ => false,
        }
    }

    fn end_of_input(&mut self) {
        self.phase = Phase::Ended;
        self.head_deadline = None;
        self.state.head_in_progress.store(false, Ordering::Relaxed);
    }
}

impl<IO: AsyncRead + Unpin> Http1Guard<IO> {
    /// Appends what the socket has to `buf` and returns the byte count, 0 at end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let filled = self.buf.len();
        self.buf.resize(filled + READ_CHUNK, 0);
        let mut read_buf = ReadBuf::new(&mut self.buf[filled..]);
        let result = Pin::new(&mut self.inner).poll_read(cx, &mut read_buf);
        let count = read_buf.filled().len();
        self.buf.truncate(filled + count);
        result.map_ok(|()| count)
    }

    /// Reads at most `limit` body bytes straight into `out`, skipping the guard's buffer.
    fn poll_read_body(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
        limit: u64,
    ) -> Poll<io::Result<()>> {
        // The minimum is at most `out.remaining()`, a usize.
        let take = limit.min(out.remaining() as u64) as usize;
        let mut direct = ReadBuf::new(out.initialize_unfilled_to(take));
        ready!(Pin::new(&mut self.inner).poll_read(cx, &mut direct))?;
        let count = direct.filled().len();
        if count == 0 {
            self.end_of_input();
            return Poll::Ready(Ok(()));
        }
        out.advance(count);
        self.consume_body(count as u64);
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Http1Guard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.ready > 0 {
                let count = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..count]);
                this.buf.advance(count);
                this.ready -= count;
                return Poll::Ready(Ok(()));
            }
            if matches!(this.phase, Phase::Ended) {
                return Poll::Ready(Ok(()));
            }
            if this.buf.is_empty() {
                let limit = this.direct_read_limit();
                if limit > 0 {
                    return this.poll_read_body(cx, out, limit);
                }
            }
            match this.poll_fill(cx) {
                Poll::Ready(Ok(0)) => this.end_of_input(),
                Poll::Ready(Ok(_)) => this.process(),
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    if !this.head_timed_out(cx) {
                        return Poll::Pending;
                    }
                    let rejection = Rejection::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "head_timeout",
                        format!(
                            "the request head did not arrive within {} seconds",
                            this.head_timeout.as_secs()
                        ),
                    );
                    this.reject(RejectionPoint::Head, rejection);
                }
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Http1Guard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
