//! The client that forwards requests to the app (inbound) and to peer services (outbound),
//! the body type of every listener's responses, and the mapping of upstream failures to
//! `502 Bad Gateway` and `504 Gateway Timeout`.
//!
//! Header rules shared by both directions live in [`headers`].

pub mod headers;

use std::error::Error as StdError;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::ServerName;

/// The body of every response a listener sends: either the upstream's body, streamed as it
/// arrives, or a small body the sidecar wrote itself.
pub type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

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
    /// The TLS handshake with the upstream failed (untrusted or mismatched certificate).
    Tls,
    /// No response headers arrived within the upstream timeout.
    Timeout,
    /// The connection worked but the exchange did not (closed early, invalid response).
    Protocol,
}

impl FailureKind {
    /// Returns the metric label.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::Timeout => "timeout",
            FailureKind::Protocol => "protocol",
        }
    }

    /// Returns the status sent downstream: 504 for a timeout, 502 for everything else.
    pub fn status(self) -> StatusCode {
        match self {
            FailureKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// A forwarded request that got no response, with the upstream it was sent to.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no response headers from {upstream} within {timeout:?}")]
    Timeout { upstream: Uri, timeout: Duration },
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
            UpstreamError::Failed { kind, .. } => *kind,
        }
    }
}

/// An HTTP client for one upstream: plain HTTP/1.1, or TLS offering HTTP/2 and HTTP/1.1 by
/// ALPN. Clones share one connection pool.
#[derive(Clone, Debug)]
pub enum UpstreamClient {
    Plain(Client<HttpConnector, Incoming>),
    Tls(Client<HttpsConnector<HttpConnector>, Incoming>),
}

impl UpstreamClient {
    /// Creates a client for `http://` upstreams.
    pub fn plain() -> UpstreamClient {
        UpstreamClient::Plain(Client::builder(TokioExecutor::new()).build(http_connector()))
    }

    /// Creates a client for `https://` upstreams. The peer's certificate is verified against
    /// `server_name` when given, and against the host of each request's URI otherwise.
    pub fn tls(config: rustls::ClientConfig, server_name: Option<ServerName<'static>>) -> Self {
        let builder = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only();
        let builder = match server_name {
            Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
            None => builder,
        };
        let connector = builder
            .enable_http1()
            .enable_http2()
            .wrap_connector(http_connector());
        UpstreamClient::Tls(Client::builder(TokioExecutor::new()).build(connector))
    }

    /// Sends `request` (whose URI must be absolute) and waits at most `timeout` for the
    /// response headers. The request and response bodies stream and are not limited by the
    /// timeout.
    pub async fn send(
        &self,
        request: Request<Incoming>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let upstream = request.uri().clone();
        let pending = match self {
            UpstreamClient::Plain(client) => client.request(request),
            UpstreamClient::Tls(client) => client.request(request),
        };
        match tokio::time::timeout(timeout, pending).await {
            Err(_elapsed) => Err(UpstreamError::Timeout { upstream, timeout }),
            Ok(Err(err)) => Err(UpstreamError::Failed {
                upstream,
                kind: classify(&err),
                message: error_chain(&err),
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }
}

fn http_connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    // Requests are small and latency-bound, so Nagle's algorithm would only delay them.
    connector.set_nodelay(true);
    // The HTTPS connector checks the scheme itself and needs the inner one to accept https.
    connector.enforce_http(false);
    connector
}

fn classify(err: &hyper_util::client::legacy::Error) -> FailureKind {
    if chain_has_tls_error(err) {
        FailureKind::Tls
    } else if err.is_connect() {
        FailureKind::Connect
    } else {
        FailureKind::Protocol
    }
}

/// Looks for a rustls error anywhere in the chain. tokio-rustls reports handshake failures
/// as an `io::Error` that wraps the rustls error, and `io::Error::source` skips the wrapped
/// error, so each `io::Error`'s payload is checked too.
fn chain_has_tls_error(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        current = err.source();
    }
    false
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
    let joined = format!("{base_path}{request_part}");

    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(base.scheme().cloned().unwrap_or(Scheme::HTTP));
    parts.authority = base.authority().cloned();
    // Both halves come from valid URIs, so the joined path is valid too. If that ever
    // failed, the fallback forwards to the request's own path.
    parts.path_and_query = Some(
        PathAndQuery::try_from(joined)
            .ok()
            .or_else(|| path_and_query.cloned())
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
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
        assert_eq!(FailureKind::Connect.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(FailureKind::Tls.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(FailureKind::Protocol.status(), StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn tls_error_found_inside_io_error() {
        let tls = rustls::Error::General("bad certificate".into());
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        assert!(chain_has_tls_error(&io));
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!chain_has_tls_error(&plain));
    }
}
