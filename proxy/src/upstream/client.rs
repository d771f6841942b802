//! [`UpstreamClient`]: the pooled HTTP client that forwards requests, with its connect
//! timeout, the response timeout, and the one retry of an idempotent request whose
//! connection was refused. Plain HTTP/1.1 goes through the sidecar's own client
//! ([`Http1Pool`]), h2c and TLS through hyper-util's.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::ServerName;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::guarded::GuardedConnector;
use super::http1::{Http1Body, Http1Error, Http1Pool};
use super::{error_chain, BoxError, FailureKind, RequestBody, UpstreamError};
use crate::access_log::Direction;
use crate::framing::{InvalidResponse, ResponseRejectionObserver};
use crate::metrics::Metrics;

/// How long an idle pooled connection is kept. Shorter than the 60-second idle timeout of
/// Portcullis listeners (and of most servers), so this side closes first and never sends a
/// request into a connection the peer is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before the one retry of a refused connection: long enough for an app that is
/// restarting to start listening, short enough that a down app still gets 502 at once.
const RETRY_DELAY: Duration = Duration::from_millis(100);

/// Connection options of an [`UpstreamClient`].
#[derive(Debug, Clone, Copy)]
pub struct UpstreamOptions {
    /// Maximum time to open a TCP connection.
    pub connect_timeout: Duration,
    /// Speak HTTP/2 with prior knowledge (h2c) to a plain upstream instead of HTTP/1.1.
    pub http2: bool,
    /// Maximum requests in flight at once, and so pooled connections; `None` for no limit.
    pub max_connections: Option<usize>,
}

/// The metrics an [`UpstreamClient`] counts in, with the `direction` label of its requests.
#[derive(Clone)]
pub struct UpstreamMetrics {
    metrics: Metrics,
    direction: Direction,
}

impl UpstreamMetrics {
    pub fn new(metrics: Metrics, direction: Direction) -> UpstreamMetrics {
        UpstreamMetrics { metrics, direction }
    }

    /// Returns the observer that counts responses the response guard rejected.
    fn rejection_observer(&self) -> ResponseRejectionObserver {
        let counter = self.metrics.upstream_response_rejections.clone();
        let direction = self.direction.label();
        Arc::new(move |reason| counter.with_label_values(&[direction, reason]).inc())
    }

    fn count_retry(&self) {
        self.metrics
            .upstream_retries
            .with_label_values(&[self.direction.label()])
            .inc();
    }
}

impl fmt::Debug for UpstreamMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamMetrics")
            .field("direction", &self.direction)
            .finish_non_exhaustive()
    }
}

/// An HTTP client for one upstream: plain HTTP/1.1 or h2c, or TLS offering HTTP/2 and
/// HTTP/1.1 by ALPN. Connections are pooled and reused; clones share one pool.
#[derive(Clone, Debug)]
pub struct UpstreamClient {
    pool: Pool,
    connect_timeout: Duration,
    metrics: UpstreamMetrics,
    /// Permits for the requests that may be in flight, or `None` for no limit. A request
    /// keeps its permit until its response body ends, so the pool needs no more connections.
    slots: Option<Arc<Semaphore>>,
}

#[derive(Clone, Debug)]
enum Pool {
    /// Plain HTTP/1.1, with the sidecar's own client.
    Http1(Http1Pool),
    /// Boxed, being several times larger than the other variant.
    Hyper(Box<HyperPool>),
}

/// The pools of hyper-util's client: h2c with prior knowledge, and TLS.
#[derive(Clone, Debug)]
enum HyperPool {
    Plain(Client<GuardedConnector<HttpConnector>, RequestBody>),
    Tls(Client<GuardedConnector<HttpsConnector<HttpConnector>>, RequestBody>),
}

impl UpstreamClient {
    /// Creates a client for `http://` upstreams.
    pub fn plain(options: UpstreamOptions, metrics: UpstreamMetrics) -> UpstreamClient {
        let slots = options
            .max_connections
            .map(|max| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))));
        if !options.http2 {
            let pool = Http1Pool::new(
                options.connect_timeout,
                POOL_IDLE_TIMEOUT,
                metrics.rejection_observer(),
            );
            return UpstreamClient {
                pool: Pool::Http1(pool),
                connect_timeout: options.connect_timeout,
                metrics,
                slots,
            };
        }
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(POOL_IDLE_TIMEOUT);
        builder.http2_only(options.http2);
        let connector = GuardedConnector::new(
            http_connector(options.connect_timeout),
            options.http2,
            metrics.rejection_observer(),
        );
        UpstreamClient {
            pool: Pool::Hyper(Box::new(HyperPool::Plain(builder.build(connector)))),
            connect_timeout: options.connect_timeout,
            metrics,
            slots,
        }
    }

    /// Creates a client for `https://` upstreams. The peer's certificate is verified against
    /// `server_name` when given, and against the host of each request's URI otherwise.
    pub fn tls(
        config: rustls::ClientConfig,
        server_name: Option<ServerName<'static>>,
        connect_timeout: Duration,
        metrics: UpstreamMetrics,
    ) -> Self {
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
            .wrap_connector(http_connector(connect_timeout));
        let mut client = Client::builder(TokioExecutor::new());
        client.pool_idle_timeout(POOL_IDLE_TIMEOUT);
        let connector = GuardedConnector::new(connector, false, metrics.rejection_observer());
        UpstreamClient {
            pool: Pool::Hyper(Box::new(HyperPool::Tls(client.build(connector)))),
            connect_timeout,
            metrics,
            slots: None,
        }
    }

    /// Sends `request` (whose URI must be absolute) and waits at most `timeout` for the
    /// response headers. The request and response bodies stream and are not limited by the
    /// timeout.
    ///
    /// A request whose connection was refused is sent once more after [`RETRY_DELAY`] when
    /// its method is idempotent and it has no body, because then nothing was sent and the
    /// request can be rebuilt. Other failures are returned at once.
    ///
    /// With a connection limit, a request first waits for a free slot, within `timeout`.
    pub async fn send(
        &self,
        request: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let deadline = Instant::now() + timeout;
        let slot = match &self.slots {
            Some(slots) => {
                match tokio::time::timeout_at(deadline, Arc::clone(slots).acquire_owned()).await {
                    Ok(permit) => permit.ok(),
                    Err(_elapsed) => {
                        return Err(UpstreamError::Timeout {
                            upstream: without_query(request.uri()),
                            timeout,
                        })
                    }
                }
            }
            None => None,
        };
        // Boxed, so a request queued for a slot above keeps only this function's small state.
        // The sending state is several times larger and exists only for requests in flight.
        let response = match &self.pool {
            Pool::Http1(pool) => Box::pin(self.send_http1(pool, request, deadline, timeout))
                .await?
                .map(Inner::Http1),
            Pool::Hyper(pool) => Box::pin(self.send_with_retry(pool, request, deadline, timeout))
                .await?
                .map(Inner::Hyper),
        };
        Ok(response.map(|inner| UpstreamBody { inner, _slot: slot }))
    }

    /// Sends `request` with the sidecar's own HTTP/1.1 client, which retries a refused
    /// connection itself: it connects before it takes the request apart, so nothing needs
    /// copying for the retry.
    async fn send_http1(
        &self,
        pool: &Http1Pool,
        request: Request<RequestBody>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Response<Http1Body>, UpstreamError> {
        let (parts, body) = request.into_parts();
        // Cloning a `Uri` only shares its bytes. The query is cut off only for an error log.
        let uri = parts.uri.clone();
        let on_retry = |err: &Http1Error| {
            tracing::debug!(upstream = %without_query(&uri), error = %err, "connection refused; retrying once");
            self.metrics.count_retry();
        };
        let pending = pool.send(parts, body, RETRY_DELAY, on_retry);
        match tokio::time::timeout_at(deadline, pending).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(self.failure(&uri, err.kind(), &err)),
            Err(_elapsed) => Err(UpstreamError::Timeout {
                upstream: without_query(&uri),
                timeout,
            }),
        }
    }

    async fn send_with_retry(
        &self,
        pool: &HyperPool,
        request: Request<RequestBody>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let retry = replayable_copy(&request);
        let result = self.send_once(pool, request, deadline, timeout).await;
        match (result, retry) {
            (Err(err), Some(copy)) if err.kind() == FailureKind::Connect => {
                tracing::debug!(upstream = %without_query(copy.uri()), error = %err, "connection refused; retrying once");
                self.metrics.count_retry();
                tokio::time::sleep(RETRY_DELAY).await;
                self.send_once(pool, copy, deadline, timeout).await
            }
            (result, _) => result,
        }
    }

    async fn send_once(
        &self,
        pool: &HyperPool,
        request: Request<RequestBody>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        // Cloning a `Uri` only shares its bytes. The query is cut off only for an error log.
        let uri = request.uri().clone();
        let pending = match pool {
            HyperPool::Plain(client) => client.request(request),
            HyperPool::Tls(client) => client.request(request),
        };
        match tokio::time::timeout_at(deadline, pending).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) => Err(self.failure(&uri, classify(&err), &err)),
            Err(_elapsed) => Err(UpstreamError::Timeout {
                upstream: without_query(&uri),
                timeout,
            }),
        }
    }

    /// Builds the error for a request to `uri` that failed with `err`, of `kind`.
    fn failure(
        &self,
        uri: &Uri,
        kind: FailureKind,
        err: &(dyn StdError + 'static),
    ) -> UpstreamError {
        let upstream = without_query(uri);
        match kind {
            FailureKind::ConnectTimeout => UpstreamError::ConnectTimeout {
                upstream,
                timeout: self.connect_timeout,
            },
            kind => UpstreamError::Failed {
                upstream,
                kind,
                message: error_chain(err),
            },
        }
    }
}

/// A response body from the upstream, holding the request's connection slot until it ends
/// or is dropped.
pub struct UpstreamBody {
    inner: Inner,
    _slot: Option<OwnedSemaphorePermit>,
}

enum Inner {
    Hyper(Incoming),
    Http1(Http1Body),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().inner {
            Inner::Hyper(body) => Pin::new(body).poll_frame(cx).map_err(BoxError::from),
            Inner::Http1(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Hyper(body) => body.is_end_stream(),
            Inner::Http1(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Hyper(body) => body.size_hint(),
            Inner::Http1(body) => body.size_hint(),
        }
    }
}

/// Returns `uri` without its query, for errors and logs, because a query may carry a bearer
/// token (`token_sources.query_parameter`) or other secrets.
fn without_query(uri: &Uri) -> Uri {
    let mut parts = uri.clone().into_parts();
    if let Some(path_and_query) = &parts.path_and_query {
        parts.path_and_query = path_and_query.path().parse().ok();
    }
    // A path taken from a valid URI parses again; the fallback keeps the query out anyway.
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

/// Returns a copy of `request` to retry with, when it is idempotent (RFC 9110 section
/// 9.2.2) and has no body.
fn replayable_copy(request: &Request<RequestBody>) -> Option<Request<RequestBody>> {
    if !request.method().is_idempotent() || !request.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

fn http_connector(connect_timeout: Duration) -> HttpConnector {
    let mut connector = HttpConnector::new();
    // Requests are small and latency-bound, so Nagle's algorithm would only delay them.
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    // The HTTPS connector checks the scheme itself and needs the inner one to accept https.
    connector.enforce_http(false);
    connector
}

fn classify(err: &hyper_util::client::legacy::Error) -> FailureKind {
    if chain_has::<InvalidResponse>(err) {
        FailureKind::InvalidResponse
    } else if chain_has::<rustls::Error>(err) {
        FailureKind::Tls
    } else if err.is_connect() && chain_has_io_kind(err, io::ErrorKind::TimedOut) {
        // hyper-util 0.1 reports its own connect timer as `TimedOut`, as the OS does for a
        // handshake that got no reply.
        FailureKind::ConnectTimeout
    } else if err.is_connect() {
        FailureKind::Connect
    } else {
        FailureKind::Protocol
    }
}

/// Looks for an error of type `E` anywhere in the chain. tokio-rustls reports handshake
/// failures, and the response guard reports invalid responses, as an `io::Error` that wraps
/// the real error, and `io::Error::source` skips the wrapped error, so each `io::Error`'s
/// payload is checked too.
fn chain_has<E: StdError + 'static>(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err.is::<E>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.is::<E>()) {
                return true;
            }
        }
        current = err.source();
    }
    false
}

/// Looks for an `io::Error` of `kind` anywhere in the chain.
fn chain_has_io_kind(err: &(dyn StdError + 'static), kind: io::ErrorKind) -> bool {
    let mut current = Some(err);
    while let Some(err) = current {
        if err
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == kind)
        {
            return true;
        }
        current = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use http::Method;
    use http_body_util::Full;

    use super::*;

    fn request(method: Method, body: &'static str) -> Request<RequestBody> {
        let body = Full::new(bytes::Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = "http://127.0.0.1:1/a".parse().unwrap();
        request.headers_mut().insert("x-a", "1".parse().unwrap());
        request
    }

    #[test]
    fn only_idempotent_bodiless_requests_replay() {
        let copy = replayable_copy(&request(Method::GET, "")).expect("GET replays");
        assert_eq!(copy.uri(), "http://127.0.0.1:1/a");
        assert_eq!(copy.headers()["x-a"], "1");
        assert!(replayable_copy(&request(Method::DELETE, "")).is_some());
        assert!(replayable_copy(&request(Method::POST, "")).is_none());
        assert!(replayable_copy(&request(Method::PUT, "data")).is_none());
    }

    #[test]
    fn tls_error_found_inside_io_error() {
        let tls = rustls::Error::General("bad certificate".into());
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        assert!(chain_has::<rustls::Error>(&io));
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!chain_has::<rustls::Error>(&plain));
    }
}
