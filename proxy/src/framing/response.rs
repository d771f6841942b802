//! [`ResponseGuard`]: the framing checks for upstream HTTP/1 connections. It reads the
//! requests the client writes to learn which ones were HEAD, then lets a response through
//! only when its framing has exactly one reading. A violation fails the read with an error
//! that carries [`InvalidResponse`], so the client reports the exchange as failed and never
//! reuses the connection, whose later bytes can no longer be trusted.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::head::MessageKind;
use super::io::{poll_checked_read, CheckedBuffer, CheckedRead};
use super::written::WrittenRequests;
use super::{BodyFraming, ChunkProgress, ChunkedBody, HeadLimits, HeadParse, HeadParser};

/// Limits for upstream responses: generous, because the app is trusted to send sane heads,
/// and bounded, so a broken app cannot make the sidecar buffer without end. hyper's client
/// buffers at most about 400 KiB by default, so larger heads fail there anyway.
pub const RESPONSE_LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 256 * 1024,
    max_uri_bytes: 256 * 1024,
    max_headers: 1_000,
    max_body_bytes: None,
};

/// Called once with the reason label when a [`ResponseGuard`] rejects a response: a
/// [`RejectionReason`](super::RejectionReason) label, `switching_protocols`,
/// `unsolicited_response` or `request_not_followed`.
pub type ResponseRejectionObserver = Arc<dyn Fn(&'static str) + Send + Sync>;

/// An upstream response whose framing is ambiguous or malformed, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("invalid response from the upstream: {0}")]
pub struct InvalidResponse(pub String);

enum ReadPhase {
    Head(HeadParser),
    Length(u64),
    Chunked(ChunkedBody),
    UntilClose,
    Ended,
    Failed(String),
}

/// Wraps the upstream side of an HTTP/1 connection. Writes pass through and are followed to
/// find each request's method; reads return only response bytes that passed the checks.
pub struct ResponseGuard<IO> {
    inner: IO,
    buf: CheckedBuffer,
    read: ReadPhase,
    written: WrittenRequests,
    /// For each request written that has no response yet: whether it was HEAD.
    pending_head_requests: VecDeque<bool>,
    observer: Option<ResponseRejectionObserver>,
}

impl<IO> ResponseGuard<IO> {
    /// Wraps `inner`; `observer`, when set, learns the reason of a rejection.
    pub fn new(inner: IO, observer: Option<ResponseRejectionObserver>) -> ResponseGuard<IO> {
        ResponseGuard {
            inner,
            buf: CheckedBuffer::new(&[]),
            read: ReadPhase::Head(HeadParser::for_kind(MessageKind::Response, RESPONSE_LIMITS)),
            written: WrittenRequests::new(),
            pending_head_requests: VecDeque::new(),
            observer,
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.inner
    }

    /// Follows bytes the client wrote, noting each request's method once its head ends.
    fn observe_written(&mut self, bytes: &[u8]) {
        if matches!(self.read, ReadPhase::Failed(_)) {
            return;
        }
        if let Err(message) = self.written.observe(bytes, &mut self.pending_head_requests) {
            // The guard can no longer tell which response has a body.
            self.fail("request_not_followed", message);
        }
    }

    /// Decides how the body of a response with `status` is framed (RFC 9112 section 6.3).
    fn start_body(&mut self, status: u16, declared: BodyFraming, close: bool) {
        if status == 101 {
            self.fail(
                "switching_protocols",
                "the upstream switched protocols (101), which the sidecar never asks for".into(),
            );
            return;
        }
        if (100..200).contains(&status) {
            // An interim response; the final one for the same request follows.
            self.read = self.next_head();
            return;
        }
        let Some(head_request) = self.pending_head_requests.pop_front() else {
            self.fail(
                "unsolicited_response",
                format!("the upstream sent a {status} response to no request"),
            );
            return;
        };
        let framing = if head_request || status == 204 || status == 304 {
            BodyFraming::None
        } else {
            declared
        };
        self.read = match framing {
            BodyFraming::None if close => ReadPhase::Ended,
            BodyFraming::None => self.next_head(),
            BodyFraming::Length(length) => ReadPhase::Length(length),
            BodyFraming::Chunked => ReadPhase::Chunked(ChunkedBody::new(RESPONSE_LIMITS)),
            BodyFraming::UntilClose => ReadPhase::UntilClose,
        };
    }

    fn next_head(&self) -> ReadPhase {
        ReadPhase::Head(HeadParser::for_kind(MessageKind::Response, RESPONSE_LIMITS))
    }

    fn fail(&mut self, reason: &'static str, message: String) {
        if matches!(self.read, ReadPhase::Failed(_)) {
            return;
        }
        tracing::debug!(reason, %message, "upstream response framing rejected");
        if let Some(observer) = &self.observer {
            observer(reason);
        }
        self.read = ReadPhase::Failed(message);
        self.buf.discard_unchecked();
    }
}

impl<IO: AsyncRead + Unpin> CheckedRead for ResponseGuard<IO> {
    type Inner = IO;

    fn parts(&mut self) -> (&mut CheckedBuffer, &mut IO) {
        (&mut self.buf, &mut self.inner)
    }

    fn finished(&self) -> Option<io::Result<()>> {
        match &self.read {
            ReadPhase::Failed(message) => {
                let error = InvalidResponse(message.clone());
                Some(Err(io::Error::new(io::ErrorKind::InvalidData, error)))
            }
            ReadPhase::Ended => Some(Ok(())),
            _ => None,
        }
    }

    fn direct_read_limit(&self) -> u64 {
        match &self.read {
            ReadPhase::Length(remaining) => *remaining,
            ReadPhase::Chunked(body) => body.data_remaining(),
            ReadPhase::UntilClose => u64::MAX,
            _ => 0,
        }
    }

    fn consume_body(&mut self, count: u64) {
        match &mut self.read {
            ReadPhase::Length(remaining) => {
                *remaining = remaining.saturating_sub(count);
                if *remaining == 0 {
                    self.read = self.next_head();
                }
            }
            ReadPhase::Chunked(body) => body.consume_data(count),
            _ => {}
        }
    }

    fn end_of_input(&mut self) {
        self.read = ReadPhase::Ended;
    }

    fn process(&mut self) {
        loop {
            let pending = self.buf.unchecked();
            if pending.is_empty() {
                return;
            }
            match &mut self.read {
                ReadPhase::Ended | ReadPhase::Failed(_) => {
                    self.buf.discard_unchecked();
                    return;
                }
                ReadPhase::Head(parser) => match parser.feed(pending) {
                    HeadParse::Incomplete => return,
                    HeadParse::Rejected(rejection) => {
                        self.fail(rejection.reason.label(), rejection.message)
                    }
                    HeadParse::Complete(head) => {
                        self.buf.mark_checked(head.len);
                        self.start_body(head.status.unwrap_or(0), head.framing, head.close);
                    }
                },
                ReadPhase::Length(remaining) => {
                    let taken = (*remaining).min(pending.len() as u64);
                    *remaining -= taken;
                    // `taken` is at most `pending.len()`, a usize.
                    self.buf.mark_checked(taken as usize);
                    if *remaining == 0 {
                        self.read = self.next_head();
                    }
                }
                ReadPhase::Chunked(body) => match body.feed(pending) {
                    Ok(ChunkProgress::NeedMore) => {
                        self.buf.mark_all_checked();
                        return;
                    }
                    Ok(ChunkProgress::Done(count)) => {
                        self.buf.mark_checked(count);
                        self.read = self.next_head();
                    }
                    Err(rejection) => self.fail(rejection.reason.label(), rejection.message),
                },
                ReadPhase::UntilClose => {
                    self.buf.mark_all_checked();
                    return;
                }
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ResponseGuard<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_checked_read(self.get_mut(), cx, out)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ResponseGuard<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.observe_written(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let mut left = written;
        for buf in bufs {
            if left == 0 {
                break;
            }
            let part = left.min(buf.len());
            this.observe_written(&buf[..part]);
            left -= part;
        }
        Poll::Ready(Ok(written))
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

#[cfg(test)]
mod tests;
