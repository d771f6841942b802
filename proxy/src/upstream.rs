//! The client that forwards requests to the app (inbound) and to peer services (outbound),
//! the body type of every listener's responses, and the mapping of upstream failures to
//! `502 Bad Gateway` and `504 Gateway Timeout`.
//!
//! Header rules shared by both directions live in [`headers`].

mod client;
mod guarded;
pub mod headers;
mod http1;

pub use client::{UpstreamBody, UpstreamClient, UpstreamMetrics, UpstreamOptions};

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// The error type of response bodies: hyper's, or the HTTP/1 client's own.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The body of every response a listener sends: either the upstream's body, streamed as it
/// arrives, or a small body the sidecar wrote itself.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A failure while reading a request body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Read(#[from] hyper::Error),
    #[error("the request body is larger than {max} bytes")]
    TooLarge { max: u64 },
}

/// The body of every request a listener hands to its handler and forwards, streamed as it
/// arrives.
pub type RequestBody = UnsyncBoxBody<Bytes, BodyError>;

/// Wraps bytes the sidecar produced as a [`ProxyBody`].
pub fn full_body(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Builds a response with a JSON body and `Content-Type: application/json`.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The reason a forwarded request got no response. Its label is the `kind` of the
/// `portcullis_upstream_errors_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The TCP connection failed (refused, unreachable, reset during connect).
    Connect,
    /// The TCP connection was not established within the connect timeout.
    ConnectTimeout,
    /// The TLS handshake with the upstream failed (untrusted or mismatched certificate).
    Tls,
    /// No response headers arrived within the upstream timeout.
    Timeout,
    /// The connection worked but the exchange did not (closed early, HTTP/2 error).
    Protocol,
    /// The response broke the framing rules, so the connection was dropped.
    InvalidResponse,
}

impl FailureKind {
    /// Returns the metric label.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::Tls => "tls",
            FailureKind::Timeout => "timeout",
            FailureKind::Protocol => "protocol",
            FailureKind::InvalidResponse => "invalid_response",
        }
    }

    /// Returns the status sent downstream: 504 for either timeout, 502 for everything else.
    pub fn status(self) -> StatusCode {
        match self {
            FailureKind::Timeout | FailureKind::ConnectTimeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A forwarded request that got no response, with the upstream it was sent to.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no response headers from {upstream} within {timeout:?}")]
    Timeout { upstream: Uri, timeout: Duration },
    #[error("no TCP connection to {upstream} within the connect timeout of {timeout:?}")]
    ConnectTimeout { upstream: Uri, timeout: Duration },
    #[error("request to {upstream} failed ({}): {message}", kind.label())]
    Failed {
        upstream: Uri,
        kind: FailureKind,
        /// The error and every error it wraps, joined by `: `.
        message: String,
    },
}

impl UpstreamError {
    pub fn kind(&self) -> FailureKind {
        match self {
            UpstreamError::Timeout { .. } => FailureKind::Timeout,
            UpstreamError::ConnectTimeout { .. } => FailureKind::ConnectTimeout,
            UpstreamError::Failed { kind, .. } => *kind,
        }
    }
}

/// Joins an error and its sources with `: `, because hyper's top-level messages (such as
/// "client error (Connect)") do not say what went wrong.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut message = err.to_string();
    let mut current = err.source();
    while let Some(source) = current {
        message.push_str(": ");
        message.push_str(&source.to_string());
        current = source.source();
    }
    message
}

/// Builds the URI a request is forwarded to: the scheme and authority of `base`, then the
/// base's path (when it is more than `/`) followed by the request's path and query.
pub fn upstream_uri(base: &Uri, path_and_query: Option<&PathAndQuery>) -> Uri {
    let request_part = path_and_query.map_or("/", PathAndQuery::as_str);
    let base_path = base.path().trim_end_matches('/');

    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(base.scheme().cloned().unwrap_or(Scheme::HTTP));
    parts.authority = base.authority().cloned();
    parts.path_and_query = Some(match path_and_query {
        // The usual upstream has no path of its own: the request's path goes as it is.
        Some(path_and_query) if base_path.is_empty() => path_and_query.clone(),
        // Both halves come from valid URIs, so the joined path is valid too. If that ever
        // failed, the fallback forwards to the request's own path.
        _ => PathAndQuery::try_from(format!("{base_path}{request_part}"))
            .ok()
            .or_else(|| path_and_query.cloned())
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    });
    Uri::from_parts(parts).unwrap_or_else(|_| base.clone())
}

/// Returns the `Host` value for a request to `base`: its authority (host and port as configured).
pub fn host_value(base: &Uri) -> Option<HeaderValue> {
    base.authority()
        .map(Authority::as_str)
        .and_then(|authority| HeaderValue::from_str(authority).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uri_keeps_path_and_query() {
        let base: Uri = "http://127.0.0.1:8081".parse().unwrap();
        let request: PathAndQuery = "/orders/7?expand=items".parse().unwrap();
        let uri = upstream_uri(&base, Some(&request));
        assert_eq!(
            uri.to_string(),
            "http://127.0.0.1:8081/orders/7?expand=items"
        );
    }

    #[test]
    fn upstream_uri_prepends_base_path() {
        let base: Uri = "https://peer.example:10443/api/".parse().unwrap();
        let request: PathAndQuery = "/inventory?x=1".parse().unwrap();
        let uri = upstream_uri(&base, Some(&request));
        assert_eq!(
            uri.to_string(),
            "https://peer.example:10443/api/inventory?x=1"
        );
    }

    #[test]
    fn upstream_uri_defaults_to_root() {
        let base: Uri = "http://127.0.0.1:8081".parse().unwrap();
        assert_eq!(
            upstream_uri(&base, None).to_string(),
            "http://127.0.0.1:8081/"
        );
    }

    #[test]
    fn host_value_includes_port() {
        let base: Uri = "https://localhost:10443".parse().unwrap();
        assert_eq!(host_value(&base).unwrap(), "localhost:10443");
    }

    #[test]
    fn timeout_maps_to_504_and_others_to_502() {
        assert_eq!(FailureKind::Timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            FailureKind::ConnectTimeout.status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(FailureKind::Connect.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(FailureKind::Tls.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(FailureKind::Protocol.status(), StatusCode::BAD_GATEWAY);
    }
}
