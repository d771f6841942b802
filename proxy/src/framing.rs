//! Strict HTTP/1.1 message framing (RFC 9112) checked on the raw bytes, before hyper parses
//! them.
//!
//! hyper accepts some requests that other servers frame differently: it drops
//! `Content-Length` when `Transfer-Encoding` is present, takes a bare LF as a line end, and
//! trims whitespace that hides an unusual `Transfer-Encoding` value. A proxy in front of the
//! sidecar that reads such a request another way would see a second, hidden request in its
//! body (request smuggling). [`Http1Guard`] sits between the socket and hyper. It lets a
//! request head through only when its framing has exactly one reading, follows the body to
//! find where the next head starts, and ends the stream at the first violation, so hyper
//! never parses anything after it. [`ResponseGuard`] applies the same rules to upstream
//! responses, where a violation fails the exchange with 502.
//!
//! What the guard rejects, and with which status:
//! - 400, for the line syntax: bare CR or LF, obs-fold, whitespace before a colon, a field
//!   name that is not a token, a control character in a field value, a malformed request
//!   line.
//! - 400, for the length: `Content-Length` together with `Transfer-Encoding`, more than one
//!   `Content-Length` or `Transfer-Encoding` field, a `Content-Length` that is not plain
//!   digits, a `Transfer-Encoding` other than exactly `chunked`, trailing whitespace after
//!   either, `Transfer-Encoding` on HTTP/1.0.
//! - 400, in a chunked body: a malformed chunk size line, chunk terminator or trailer field.
//! - 408: no complete request head within the head timeout.
//! - 413: a body larger than the configured maximum.
//! - 414: a request target longer than the configured maximum.
//! - 431: a request head (or trailer section) larger than the configured maximum, or with
//!   more fields than allowed.
//! - 505: an HTTP version other than 1.0 and 1.1.

mod chunked;
mod guard;
mod head;
pub(crate) mod io;
mod response;

use http::StatusCode;

pub use chunked::{ChunkProgress, ChunkedBody};
pub use guard::{GuardState, Http1Guard, RejectionPoint};
pub use head::{BodyFraming, HeadParse, HeadParser, MessageKind, RequestHead};
pub use response::{InvalidResponse, ResponseGuard};

/// The limits the guard enforces on each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Maximum bytes of a request head, and of a chunked body's trailer section.
    pub max_head_bytes: usize,
    /// Maximum bytes of the request target.
    pub max_uri_bytes: usize,
    /// Maximum header fields in a head, and trailer fields in a trailer section.
    pub max_headers: usize,
    /// Maximum body bytes; `None` means no limit.
    pub max_body_bytes: Option<u64>,
}

/// A request the guard stopped, with the status to send and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    /// Short label for logs and metrics, such as `bad_framing`.
    pub label: &'static str,
    /// A sentence for the client and the log, naming the part of the request that failed.
    pub message: String,
}

impl Rejection {
    fn bad_request(message: impl Into<String>) -> Rejection {
        Rejection {
            status: StatusCode::BAD_REQUEST,
            label: "bad_framing",
            message: message.into(),
        }
    }

    fn new(status: StatusCode, label: &'static str, message: impl Into<String>) -> Rejection {
        Rejection {
            status,
            label,
            message: message.into(),
        }
    }
}

/// Returns whether `byte` may appear in a token (RFC 9110 section 5.6.2), such as a method or
/// a field name.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Returns whether `byte` may appear in a field value: visible ASCII, obs-text, space or tab
/// (RFC 9110 section 5.5).
fn is_field_value_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~' | 0x80..=0xff)
}

/// Shows at most 40 bytes of untrusted input in a message, with anything but visible ASCII
/// escaped, so a rejection never carries control characters or a long echo.
fn quote(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(40)];
    let mut text: String = shown.escape_ascii().to_string();
    if bytes.len() > shown.len() {
        text.push_str("...");
    }
    format!("`{text}`")
}

#[cfg(test)]
mod tests;
