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
mod written;

use http::StatusCode;

pub use chunked::{ChunkProgress, ChunkedBody};
pub use guard::{GuardState, Http1Guard, RejectionPoint};
pub use head::{BodyFraming, HeadParse, HeadParser, MessageKind, RequestHead};
pub use response::{InvalidResponse, ResponseGuard, ResponseRejectionObserver, RESPONSE_LIMITS};

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
    /// The `error` code of the JSON response, such as `bad_framing`.
    pub label: &'static str,
    /// The rule that was broken, for logs and the rejection metrics.
    pub reason: RejectionReason,
    /// A sentence for the client and the log, naming the part of the request that failed.
    pub message: String,
}

impl Rejection {
    /// Creates the rejection for `reason`, with the status and `error` code that reason gets.
    pub fn new(reason: RejectionReason, message: impl Into<String>) -> Rejection {
        let (status, label) = match reason {
            RejectionReason::HttpVersion => {
                (StatusCode::HTTP_VERSION_NOT_SUPPORTED, "http_version")
            }
            RejectionReason::HeadTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "head_too_large",
            ),
            RejectionReason::TooManyHeaders => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too_many_headers",
            ),
            RejectionReason::UriTooLong => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            RejectionReason::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            RejectionReason::HeadTimeout => (StatusCode::REQUEST_TIMEOUT, "head_timeout"),
            _ => (StatusCode::BAD_REQUEST, "bad_framing"),
        };
        Rejection {
            status,
            label,
            reason,
            message: message.into(),
        }
    }
}

/// The rule a message broke. [`RejectionReason::label`] is the `reason` label of
/// `portcullis_request_rejections_total` and `portcullis_upstream_response_rejections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionReason {
    /// A line ending in a bare LF, or a bare CR anywhere in a head or trailer section.
    LineEnding,
    /// A field line that starts with whitespace (obs-fold line folding).
    ObsFold,
    /// A field line without a colon, a field name that is not a token (whitespace before the
    /// colon), or a control character in a field value.
    FieldSyntax,
    /// A malformed request line or status line.
    StartLine,
    /// A `Content-Length` that is not plain digits, or more than one `Content-Length` field.
    ContentLength,
    /// A `Transfer-Encoding` other than exactly `chunked`, more than one such field, or one
    /// on HTTP/1.0.
    TransferEncoding,
    /// Both `Content-Length` and `Transfer-Encoding`.
    AmbiguousLength,
    /// A malformed chunk size line.
    ChunkSize,
    /// Chunk data not followed by CRLF.
    ChunkData,
    /// An HTTP version other than 1.0 and 1.1.
    HttpVersion,
    /// A head or trailer section over `max_head_bytes`.
    HeadTooLarge,
    /// More header or trailer fields than `max_headers`.
    TooManyHeaders,
    /// A request target over `max_uri_bytes`.
    UriTooLong,
    /// A body over `max_body_bytes`.
    BodyTooLarge,
    /// No complete request head within the head timeout.
    HeadTimeout,
}

impl RejectionReason {
    /// Returns the metric label.
    pub fn label(self) -> &'static str {
        match self {
            RejectionReason::LineEnding => "line_ending",
            RejectionReason::ObsFold => "obs_fold",
            RejectionReason::FieldSyntax => "field_syntax",
            RejectionReason::StartLine => "start_line",
            RejectionReason::ContentLength => "content_length",
            RejectionReason::TransferEncoding => "transfer_encoding",
            RejectionReason::AmbiguousLength => "ambiguous_length",
            RejectionReason::ChunkSize => "chunk_size",
            RejectionReason::ChunkData => "chunk_data",
            RejectionReason::HttpVersion => "http_version",
            RejectionReason::HeadTooLarge => "head_too_large",
            RejectionReason::TooManyHeaders => "too_many_headers",
            RejectionReason::UriTooLong => "uri_too_long",
            RejectionReason::BodyTooLarge => "body_too_large",
            RejectionReason::HeadTimeout => "head_timeout",
        }
    }
}

/// Token characters (RFC 9110 section 5.6.2) by byte value, so checking a field name costs one
/// load per byte.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        byte += 1;
    }
    table
};

/// Returns whether `byte` may appear in a token (RFC 9110 section 5.6.2), such as a method or
/// a field name.
fn is_tchar(byte: u8) -> bool {
    TCHAR[usize::from(byte)]
}

/// Returns whether every byte of `bytes` is a token character. It reads every byte instead of
/// stopping at the first bad one, so the loop has no branch per byte.
fn all_tchar(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |all, &byte| all & is_tchar(byte))
}

/// Returns whether `byte` may appear in a field value: visible ASCII, obs-text, space or tab
/// (RFC 9110 section 5.5).
fn is_field_value_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~' | 0x80..=0xff)
}

/// Returns whether every byte of `bytes` may appear in a field value. Like [`all_tchar`] it
/// has no early exit, which lets the compiler check many bytes per instruction: field values
/// hold the bearer token, the longest part of most request heads.
fn all_field_value_bytes(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .fold(true, |all, &byte| all & is_field_value_byte(byte))
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
