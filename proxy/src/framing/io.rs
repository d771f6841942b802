//! Byte handling shared by the guards: a read buffer whose front part passed the checks, the
//! read that skips the buffer for body bytes, and the pass-through write side.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes read from a socket at a time while a head or framing line is checked.
const READ_CHUNK: usize = 8 * 1024;

/// Bytes read from a stream and not yet returned to the reader. The first `checked` of them
/// passed the framing checks; the rest wait for more bytes or for a verdict.
pub(super) struct CheckedBuffer {
    bytes: BytesMut,
    checked: usize,
}

impl CheckedBuffer {
    pub fn new(prefix: &[u8]) -> CheckedBuffer {
        CheckedBuffer {
            bytes: BytesMut::from(prefix),
            checked: 0,
        }
    }

    /// Copies checked bytes into `out` and returns whether there were any.
    pub fn take_checked(&mut self, out: &mut ReadBuf<'_>) -> bool {
        if self.checked == 0 {
            return false;
        }
        let count = self.checked.min(out.remaining());
        out.put_slice(&self.bytes[..count]);
        self.bytes.advance(count);
        self.checked -= count;
        true
    }

    /// Returns the bytes after the checked ones.
    pub fn unchecked(&self) -> &[u8] {
        &self.bytes[self.checked..]
    }

    /// Marks the next `count` unchecked bytes as checked.
    pub fn mark_checked(&mut self, count: usize) {
        self.checked = (self.checked + count).min(self.bytes.len());
    }

    pub fn mark_all_checked(&mut self) {
        self.checked = self.bytes.len();
    }

    /// Drops the unchecked bytes, which will never be returned.
    pub fn discard_unchecked(&mut self) {
        self.bytes.truncate(self.checked);
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends what `inner` has and returns the byte count, 0 at end of stream.
    pub fn poll_fill<IO: AsyncRead + Unpin>(
        &mut self,
        inner: &mut IO,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        poll_read_into(inner, &mut self.bytes, cx)
    }
}

/// Appends what `inner` has to `bytes` and returns the byte count, 0 at end of stream.
pub(crate) fn poll_read_into<IO: AsyncRead + Unpin>(
    inner: &mut IO,
    bytes: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    // The chunk is uninitialised stack memory and only the bytes that arrived are appended.
    // Resizing the buffer instead zeroed 8 KiB on every read, a tenth of the sidecar's
    // instructions, and left each connection holding a whole chunk.
    let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let mut read_buf = ReadBuf::uninit(&mut chunk);
    ready!(Pin::new(inner).poll_read(cx, &mut read_buf))?;
    let arrived = read_buf.filled();
    bytes.extend_from_slice(arrived);
    Poll::Ready(Ok(arrived.len()))
}

/// A stream wrapper that passes on only the bytes it has checked. [`poll_checked_read`] is its
/// read loop, shared by the request and response guards.
pub(super) trait CheckedRead {
    type Inner: AsyncRead + Unpin;

    /// Returns the buffer of bytes read ahead and the wrapped stream.
    fn parts(&mut self) -> (&mut CheckedBuffer, &mut Self::Inner);

    /// Returns the result every read gets once the stream has ended or failed, or `None`
    /// while it is open.
    fn finished(&self) -> Option<io::Result<()>>;

    /// Returns how many body bytes may be read straight into the reader's buffer.
    fn direct_read_limit(&self) -> u64;

    /// Accounts for `count` body bytes read straight into the reader's buffer.
    fn consume_body(&mut self, count: u64);

    /// Records that the wrapped stream has ended.
    fn end_of_input(&mut self);

    /// Checks the unchecked bytes in the buffer, as far as they go.
    fn process(&mut self);

    /// Called when the wrapped stream has nothing to read. Returns `true` to run the loop
    /// again (a deadline passed and the wrapper changed state), `false` to wait.
    fn stalled(&mut self, _cx: &mut Context<'_>) -> bool {
        false
    }
}

/// Reads checked bytes from `this` into `out`: buffered ones first, then body bytes straight
/// from the stream, otherwise more bytes into the buffer to check.
pub(super) fn poll_checked_read<T: CheckedRead>(
    this: &mut T,
    cx: &mut Context<'_>,
    out: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    loop {
        if this.parts().0.take_checked(out) {
            return Poll::Ready(Ok(()));
        }
        if let Some(result) = this.finished() {
            return Poll::Ready(result);
        }
        let limit = this.direct_read_limit();
        let (buf, inner) = this.parts();
        if buf.is_empty() && limit > 0 {
            // Body bytes go straight to the reader, skipping the buffer.
            let count = ready!(poll_read_direct(inner, cx, out, limit))?;
            if count == 0 {
                this.end_of_input();
            } else {
                this.consume_body(count as u64);
            }
            return Poll::Ready(Ok(()));
        }
        match buf.poll_fill(inner, cx) {
            Poll::Ready(Ok(0)) => this.end_of_input(),
            Poll::Ready(Ok(_)) => this.process(),
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => {
                if !this.stalled(cx) {
                    return Poll::Pending;
                }
            }
        }
    }
}

/// Reads at most `limit` bytes from `inner` straight into `out`, for body bytes that need no
/// check, and returns the count, 0 at end of stream.
fn poll_read_direct<IO: AsyncRead + Unpin>(
    inner: &mut IO,
    cx: &mut Context<'_>,
    out: &mut ReadBuf<'_>,
    limit: u64,
) -> Poll<io::Result<usize>> {
    // The minimum is at most `out.remaining()`, a usize.
    let take = limit.min(out.remaining() as u64) as usize;
    let mut direct = ReadBuf::new(out.initialize_unfilled_to(take));
    ready!(Pin::new(inner).poll_read(cx, &mut direct))?;
    let count = direct.filled().len();
    out.advance(count);
    Poll::Ready(Ok(count))
}

/// Implements `AsyncWrite` for a wrapper type with an `inner` stream field by passing every
/// call through to it.
macro_rules! forward_async_write {
    ($wrapper:ident) => {
        impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $wrapper<IO> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
            }
        }
    };
}

pub(crate) use forward_async_write;
