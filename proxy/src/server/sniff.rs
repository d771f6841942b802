//! Tells HTTP/2 with prior knowledge from HTTP/1 by the connection's first bytes, and the
//! stream wrapper that gives those bytes back to the HTTP/2 server.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::framing::io::forward_async_write;

/// The client connection preface of HTTP/2 (RFC 9113 section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// Reads from `io` until its bytes either differ from the HTTP/2 preface or complete it, and
/// returns the protocol with the bytes read. At end of stream the protocol is HTTP/1 with
/// whatever arrived, which the HTTP/1 side then handles.
pub async fn sniff<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<(Protocol, Vec<u8>)> {
    let mut prefix = vec![0; H2_PREFACE.len()];
    let mut filled = 0;
    while filled < H2_PREFACE.len() {
        let count = io.read(&mut prefix[filled..]).await?;
        if count == 0 {
            break;
        }
        filled += count;
        if prefix[..filled] != H2_PREFACE[..filled] {
            prefix.truncate(filled);
            return Ok((Protocol::Http1, prefix));
        }
    }
    prefix.truncate(filled);
    let protocol = if filled == H2_PREFACE.len() {
        Protocol::Http2
    } else {
        Protocol::Http1
    };
    Ok((protocol, prefix))
}

/// A stream whose first reads return `prefix`, then what `inner` has.
pub struct Prefixed<IO> {
    prefix: Vec<u8>,
    position: usize,
    inner: IO,
}

impl<IO> Prefixed<IO> {
    pub fn new(prefix: Vec<u8>, inner: IO) -> Prefixed<IO> {
        Prefixed {
            prefix,
            position: 0,
            inner,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.position < this.prefix.len() {
            let rest = &this.prefix[this.position..];
            let count = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..count]);
            this.position += count;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

forward_async_write!(Prefixed);

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    async fn sniff_bytes(bytes: &[u8]) -> (Protocol, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(bytes).await.unwrap();
        client.shutdown().await.unwrap();
        sniff(&mut server).await.unwrap()
    }

    #[tokio::test]
    async fn preface_means_http2() {
        let mut bytes = H2_PREFACE.to_vec();
        bytes.extend_from_slice(b"\0\0\0\x04");
        let (protocol, prefix) = sniff_bytes(&bytes).await;
        assert_eq!(protocol, Protocol::Http2);
        assert_eq!(prefix, H2_PREFACE);
    }

    #[tokio::test]
    async fn other_bytes_mean_http1() {
        assert_eq!(
            sniff_bytes(b"GET / HTTP/1.1\r\n").await,
            (Protocol::Http1, b"GET / HTTP/1.1\r\n".to_vec())
        );
        assert_eq!(
            sniff_bytes(b"PRI * HT").await,
            (Protocol::Http1, b"PRI * HT".to_vec())
        );
        assert_eq!(sniff_bytes(b"").await, (Protocol::Http1, Vec::new()));
    }

    #[tokio::test]
    async fn prefixed_replays_prefix_first() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        client.shutdown().await.unwrap();
        let mut stream = Prefixed::new(b"hello".to_vec(), server);
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "hello world");
    }
}
