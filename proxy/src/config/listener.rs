//! Listener settings: the resource limits and timeouts of `[inbound.limits]` and
//! `[outbound.limits]`, with the reason for every default, and case-insensitive routes.

use std::time::Duration;

use serde::Deserialize;

use super::raw::secs;
use super::{ConfigError, PathMatch, RouteRule};
use crate::path;

/// Holds a 12 KiB token several times over, with room for cookies and tracing headers.
/// Envoy's default limit for request headers is 60 KiB.
const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;
/// Beyond this a client only makes the sidecar hold memory; no real request head needs it.
const MAX_HEAD_BYTES_CEILING: usize = 1024 * 1024;
/// RFC 9112 section 3 recommends supporting request lines of at least 8,000 octets.
const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
/// hyper's default; browsers and API clients send well under 50 fields.
const DEFAULT_MAX_HEADERS: usize = 100;
/// httparse, which hyper uses, keeps one slot per header on the stack, so the count is
/// capped where that stays small.
const MAX_HEADERS_CEILING: usize = 1_000;
/// A client on a working network sends its request head in well under a second. A short
/// bound frees the connections that slow senders would otherwise hold (slowloris).
const DEFAULT_HEAD_TIMEOUT_SECS: u64 = 10;
/// A TLS handshake on a working network takes a few round trips, far less than this. The
/// bound frees connections whose client never finishes the handshake, as the head timeout
/// does for slow request heads.
const DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Long enough to reuse a connection between bursts of requests. It is also twice the
/// 30-second pool idle time of the sidecar's own upstream client, so a peer Portcullis closes
/// a pooled connection first and never sends a request into one this side is closing.
const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Far above what one app's sidecar serves at once, and a bound on memory when a client
/// opens connections without using them.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// RFC 9113 section 6.5.2 recommends allowing at least 100 concurrent streams; more only
/// multiplies the work one connection can demand.
const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// The h2 crate's default. A client that resets more streams than this before the server
/// has started them is doing a rapid reset attack (CVE-2023-44487) and gets GOAWAY.
const DEFAULT_HTTP2_MAX_PENDING_RESETS: usize = 20;

/// The limits and timeouts one listener enforces on its downstream connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Maximum size of a request head (request line and header fields) in bytes; larger
    /// heads get 431. Also the HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`.
    pub max_head_bytes: usize,
    /// Maximum length of the request target in bytes; longer targets get 414.
    pub max_uri_bytes: usize,
    /// Maximum number of header fields in a request head; more get 431.
    pub max_headers: usize,
    /// Maximum request body size in bytes; larger bodies get 413. `None` means no limit.
    pub max_body_bytes: Option<u64>,
    /// Time a client has to send a complete request head, counted from the end of the TLS
    /// handshake (or the accept, without TLS) for the first head, and from the first byte of
    /// each later head. Past it the connection gets 408 and is closed.
    pub head_timeout: Duration,
    /// Time a client has to complete the TLS handshake, counted from the accept. Past it the
    /// connection is closed without a response.
    pub tls_handshake_timeout: Duration,
    /// Time a connection may stay open with no request in progress before it is closed.
    pub idle_timeout: Duration,
    /// Maximum number of open downstream connections; further ones are closed at once.
    pub max_connections: usize,
    /// `SETTINGS_MAX_CONCURRENT_STREAMS` of HTTP/2 connections.
    pub http2_max_concurrent_streams: u32,
    /// Streams a client may reset before the server starts them; one more gets GOAWAY.
    pub http2_max_pending_resets: usize,
}

impl Default for ListenerLimits {
    fn default() -> ListenerLimits {
        ListenerLimits {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body_bytes: None,
            head_timeout: Duration::from_secs(DEFAULT_HEAD_TIMEOUT_SECS),
            tls_handshake_timeout: Duration::from_secs(DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            http2_max_pending_resets: DEFAULT_HTTP2_MAX_PENDING_RESETS,
        }
    }
}

/// A `limits` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_head_bytes: Option<usize>,
    pub max_uri_bytes: Option<usize>,
    pub max_headers: Option<usize>,
    pub max_body_bytes: Option<u64>,
    pub head_timeout_secs: Option<u64>,
    pub tls_handshake_timeout_secs: Option<u64>,
    pub idle_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub http2_max_concurrent_streams: Option<u32>,
    pub http2_max_pending_resets: Option<usize>,
}

impl RawLimits {
    /// Checks every field of the table at `table` (such as `inbound.limits`) and fills in
    /// the defaults.
    pub fn validate(self, table: &str) -> Result<ListenerLimits, ConfigError> {
        let field = |name: &str| format!("{table}.{name}");
        let defaults = ListenerLimits::default();

        let max_head_bytes = self.max_head_bytes.unwrap_or(defaults.max_head_bytes);
        if !(1024..=MAX_HEAD_BYTES_CEILING).contains(&max_head_bytes) {
            return Err(ConfigError::invalid(
                field("max_head_bytes"),
                format!("{max_head_bytes} is outside 1024 to {MAX_HEAD_BYTES_CEILING}; the default is {DEFAULT_MAX_HEAD_BYTES}"),
            ));
        }
        // A smaller head limit lowers the default target limit with it.
        let max_uri_bytes = self
            .max_uri_bytes
            .unwrap_or(defaults.max_uri_bytes.min(max_head_bytes));
        if max_uri_bytes < 16 || max_uri_bytes > max_head_bytes {
            return Err(ConfigError::invalid(
                field("max_uri_bytes"),
                format!("{max_uri_bytes} must be at least 16 and at most max_head_bytes ({max_head_bytes})"),
            ));
        }
        let max_headers = self.max_headers.unwrap_or(defaults.max_headers);
        if !(1..=MAX_HEADERS_CEILING).contains(&max_headers) {
            return Err(ConfigError::invalid(
                field("max_headers"),
                format!("{max_headers} is outside 1 to {MAX_HEADERS_CEILING}; the default is {DEFAULT_MAX_HEADERS}"),
            ));
        }
        if self.max_body_bytes == Some(0) {
            return Err(ConfigError::invalid(
                field("max_body_bytes"),
                "must be at least 1; remove the field to allow bodies of any size",
            ));
        }
        let max_connections = self.max_connections.unwrap_or(defaults.max_connections);
        if max_connections == 0 {
            return Err(ConfigError::invalid(
                field("max_connections"),
                "must be at least 1",
            ));
        }
        let http2_max_concurrent_streams = self
            .http2_max_concurrent_streams
            .unwrap_or(defaults.http2_max_concurrent_streams);
        if http2_max_concurrent_streams == 0 {
            return Err(ConfigError::invalid(
                field("http2_max_concurrent_streams"),
                "must be at least 1, or HTTP/2 clients could send no request at all",
            ));
        }

        Ok(ListenerLimits {
            max_head_bytes,
            max_uri_bytes,
            max_headers,
            max_body_bytes: self.max_body_bytes,
            head_timeout: positive_secs(
                &field("head_timeout_secs"),
                self.head_timeout_secs,
                DEFAULT_HEAD_TIMEOUT_SECS,
            )?,
            tls_handshake_timeout: positive_secs(
                &field("tls_handshake_timeout_secs"),
                self.tls_handshake_timeout_secs,
                DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS,
            )?,
            idle_timeout: positive_secs(
                &field("idle_timeout_secs"),
                self.idle_timeout_secs,
                DEFAULT_IDLE_TIMEOUT_SECS,
            )?,
            max_connections,
            http2_max_concurrent_streams,
            http2_max_pending_resets: self
                .http2_max_pending_resets
                .unwrap_or(defaults.http2_max_pending_resets),
        })
    }
}

/// Lower-cases the path of every route with [`path::fold_case`] when `case_insensitive` is
/// set. The inbound listener then matches the folded request path against them, while the
/// app still receives the path as sent.
pub fn fold_route_case(mut routes: Vec<RouteRule>, case_insensitive: bool) -> Vec<RouteRule> {
    if case_insensitive {
        for route in &mut routes {
            match &mut route.path {
                PathMatch::Exact(path) | PathMatch::Prefix(path) => *path = path::fold_case(path),
            }
        }
    }
    routes
}

/// Parses a duration in seconds that must be at least 1.
pub(super) fn positive_secs(
    field: &str,
    value: Option<u64>,
    default: u64,
) -> Result<Duration, ConfigError> {
    let duration = secs(field, value, default)?;
    if duration.is_zero() {
        return Err(ConfigError::invalid(
            field,
            format!("must be at least 1; the default is {default}"),
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_gets_defaults() {
        let limits = RawLimits::default().validate("inbound.limits").unwrap();
        assert_eq!(limits, ListenerLimits::default());
        assert!(limits.max_head_bytes >= 12 * 1024 + 4 * 1024);
    }

    #[test]
    fn values_are_kept() {
        let raw: RawLimits = toml::from_str(
            "max_head_bytes = 2048\nmax_uri_bytes = 100\nmax_headers = 5\nmax_body_bytes = 10\n\
             head_timeout_secs = 2\ntls_handshake_timeout_secs = 5\nidle_timeout_secs = 3\n\
             max_connections = 4\n\
             http2_max_concurrent_streams = 7\nhttp2_max_pending_resets = 1\n",
        )
        .unwrap();
        let limits = raw.validate("inbound.limits").unwrap();
        assert_eq!(limits.max_head_bytes, 2048);
        assert_eq!(limits.max_uri_bytes, 100);
        assert_eq!(limits.max_headers, 5);
        assert_eq!(limits.max_body_bytes, Some(10));
        assert_eq!(limits.head_timeout, Duration::from_secs(2));
        assert_eq!(limits.tls_handshake_timeout, Duration::from_secs(5));
        assert_eq!(limits.idle_timeout, Duration::from_secs(3));
        assert_eq!(limits.max_connections, 4);
        assert_eq!(limits.http2_max_concurrent_streams, 7);
        assert_eq!(limits.http2_max_pending_resets, 1);
    }

    #[test]
    fn small_head_lowers_uri_default() {
        let raw: RawLimits = toml::from_str("max_head_bytes = 4096").unwrap();
        let limits = raw.validate("inbound.limits").unwrap();
        assert_eq!(limits.max_uri_bytes, 4096);
    }

    #[test]
    fn invalid_values_name_field() {
        let cases = [
            ("max_head_bytes = 10", "inbound.limits.max_head_bytes"),
            ("max_head_bytes = 99999999", "inbound.limits.max_head_bytes"),
            ("max_uri_bytes = 70000", "inbound.limits.max_uri_bytes"),
            ("max_headers = 0", "inbound.limits.max_headers"),
            ("max_body_bytes = 0", "inbound.limits.max_body_bytes"),
            ("head_timeout_secs = 0", "inbound.limits.head_timeout_secs"),
            (
                "tls_handshake_timeout_secs = 0",
                "inbound.limits.tls_handshake_timeout_secs",
            ),
            ("idle_timeout_secs = 0", "inbound.limits.idle_timeout_secs"),
            ("max_connections = 0", "inbound.limits.max_connections"),
            (
                "http2_max_concurrent_streams = 0",
                "inbound.limits.http2_max_concurrent_streams",
            ),
        ];
        for (text, field) in cases {
            let raw: RawLimits = toml::from_str(text).unwrap();
            let message = raw.validate("inbound.limits").unwrap_err().to_string();
            assert!(message.contains(field), "{text}: {message}");
        }
    }

    #[test]
    fn unknown_field_rejected() {
        assert!(toml::from_str::<RawLimits>("max_body = 1").is_err());
    }
}
