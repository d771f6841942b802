//! [`Http1Guard`]: the IO wrapper that applies the framing checks between the socket and
//! hyper, and the [`GuardState`] it shares with the connection that owns it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::io::{forward_async_write, poll_checked_read, CheckedBuffer, CheckedRead};
use super::{
    BodyFraming, ChunkProgress, ChunkedBody, HeadLimits, HeadParse, HeadParser, Rejection,
    RejectionReason,
};

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
    buf: CheckedBuffer,
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
    ) -> Http1Guard<IO>
    where
        IO: AsyncRead + Unpin,
    {
        let mut guard = Http1Guard {
            inner,
            limits,
            head_timeout,
            buf: CheckedBuffer::new(prefix),
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

    /// Returns whether the head in progress has run out of time, registering the waker when
    /// it has not.
    fn head_timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let in_head = matches!(self.phase, Phase::Head(_));
        match &mut self.head_deadline {
            Some(deadline) if in_head => deadline.as_mut().poll(cx).is_ready(),
            _ => false,
        }
    }
}

impl<IO: AsyncRead + Unpin> CheckedRead for Http1Guard<IO> {
    type Inner = IO;

    fn parts(&mut self) -> (&mut CheckedBuffer, &mut IO) {
        (&mut self.buf, &mut self.inner)
    }

    fn finished(&self) -> Option<io::Result<()>> {
        // A rejection ends the stream for hyper, and the connection writes the response itself.
        matches!(self.phase, Phase::Ended).then_some(Ok(()))
    }

    fn direct_read_limit(&self) -> u64 {
        match &self.phase {
            Phase::Length { remaining, .. } => *remaining,
            Phase::Chunked { body, .. } => body.data_remaining(),
            _ => 0,
        }
    }

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

    fn end_of_input(&mut self) {
        self.phase = Phase::Ended;
        self.head_deadline = None;
        self.state.head_in_progress.store(false, Ordering::Relaxed);
    }

    fn process(&mut self) {
        loop {
            let pending = self.buf.unchecked();
            if pending.is_empty() && !matches!(self.phase, Phase::Ended) {
                return;
            }
            match &mut self.phase {
                Phase::Ended => {
                    self.buf.discard_unchecked();
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
                            self.buf.mark_checked(head.len);
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
                    self.buf.mark_checked(taken as usize);
                    if *remaining == 0 {
                        self.phase = self.after_message(close);
                    }
                }
                Phase::Chunked { body, close } => match body.feed(pending) {
                    Ok(ChunkProgress::NeedMore) => {
                        self.buf.mark_all_checked();
                        return;
                    }
                    Ok(ChunkProgress::Done(count)) => {
                        let close = *close;
                        self.buf.mark_checked(count);
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

    fn stalled(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.head_timed_out(cx) {
            return false;
        }
        let rejection = Rejection::new(
            RejectionReason::HeadTimeout,
            format!(
                "the request head did not arrive within {} seconds",
                self.head_timeout.as_secs()
            ),
        );
        self.reject(RejectionPoint::Head, rejection);
        true
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Http1Guard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_checked_read(self.get_mut(), cx, out)
    }
}

forward_async_write!(Http1Guard);
