//! The inbound listener's request handler: check the target, authorize, rewrite headers,
//! forward to the app.
//!
//! Every forwarded request has its target in normal origin form ([`target`]), loses
//! client-sent identity, hop-by-hop and routing-override headers, gains the verified
//! identity headers and `X-Forwarded-For`/`X-Forwarded-Proto`, and keeps its body streaming.
//! A rejected request gets its response here and never reaches the app.

pub mod target;

use std::borrow::Cow;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::header::{EXPECT, HOST};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as _;
use serde_json::json;

use crate::access_log::{self, Direction, RequestRecord};
use crate::auth::{bearer, AuthFailure, Authorizer, InvalidRequest};
use crate::config::{ClaimHeader, InboundConfig};
use crate::identity;
use crate::metrics::Metrics;
use crate::path;
use crate::server::{ConnectionInfo, Handler};
use crate::upstream::headers::{
    append_forwarded_for, remove_hop_by_hop, remove_routing_overrides, set_forwarded_proto,
};
use crate::upstream::{
    json_response, upstream_uri, FailureKind, ProxyBody, RequestBody, UpstreamClient,
    UpstreamMetrics, UpstreamOptions,
};
use crate::verify::VerifiedToken;
use target::{Target, TargetError};

/// Handles the requests that arrive for the app. [`Inbound::reload`] replaces its
/// configuration; requests already running finish with the one they started with.
pub struct Inbound {
    state: RwLock<Arc<State>>,
    metrics: Metrics,
}

/// Everything a request needs from the configuration.
struct State {
    authorizer: Authorizer,
    client: UpstreamClient,
    upstream: Uri,
    upstream_http2: bool,
    realm: String,
    forward_authorization: bool,
    upstream_timeout: Duration,
    upstream_connect_timeout: Duration,
    case_insensitive_routes: bool,
    claim_headers: Vec<ClaimHeader>,
}

/// The response and what the access log needs to know about how it came about.
struct Outcome {
    response: Response<ProxyBody>,
    /// The verified token, for the access log's subject.
    token: Option<Arc<VerifiedToken>>,
    reason: Option<&'static str>,
}

impl Outcome {
    fn rejected(response: Response<ProxyBody>, reason: &'static str) -> Outcome {
        Outcome {
            response,
            token: None,
            reason: Some(reason),
        }
    }
}

impl Inbound {
    pub fn new(
        config: &InboundConfig,
        claim_headers: &[ClaimHeader],
        authorizer: Authorizer,
        metrics: Metrics,
    ) -> Inbound {
        Inbound {
            state: RwLock::new(Arc::new(State::new(
                config,
                claim_headers,
                authorizer,
                &metrics,
            ))),
            metrics,
        }
    }

    /// Replaces the configuration for requests that start from now on.
    pub fn reload(
        &self,
        config: &InboundConfig,
        claim_headers: &[ClaimHeader],
        authorizer: Authorizer,
    ) {
        let state = Arc::new(State::new(config, claim_headers, authorizer, &self.metrics));
        // A poisoned lock only means a panic elsewhere while swapping; the slot is still
        // valid, so the new state replaces it.
        *self.state.write().unwrap_or_else(|err| err.into_inner()) = state;
    }

    fn current(&self) -> Arc<State> {
        Arc::clone(&self.state.read().unwrap_or_else(|err| err.into_inner()))
    }
}

impl State {
    fn new(
        config: &InboundConfig,
        claim_headers: &[ClaimHeader],
        authorizer: Authorizer,
        metrics: &Metrics,
    ) -> State {
        let options = UpstreamOptions {
            connect_timeout: config.upstream_connect_timeout,
            http2: config.upstream_http2,
            max_connections: Some(config.upstream_max_connections),
        };
        let upstream_metrics = UpstreamMetrics::new(metrics.clone(), Direction::Inbound);
        State {
            authorizer,
            client: UpstreamClient::plain(options, upstream_metrics),
            upstream: config.upstream.clone(),
            upstream_http2: config.upstream_http2,
            realm: config.realm.clone(),
            forward_authorization: config.forward_authorization,
            upstream_timeout: config.upstream_timeout,
            upstream_connect_timeout: config.upstream_connect_timeout,
            case_insensitive_routes: config.case_insensitive_routes,
            claim_headers: claim_headers.to_vec(),
        }
    }

    async fn authorize_and_forward(
        &self,
        request: Request<RequestBody>,
        target: Target,
        connection: ConnectionInfo,
        metrics: &Metrics,
    ) -> Outcome {
        // Routes match the path as is unless they are case-insensitive, so only that case
        // pays for a folded copy.
        let route_path = if self.case_insensitive_routes {
            Cow::Owned(path::fold_case(target.path()))
        } else {
            Cow::Borrowed(target.path())
        };
        // Boxed, so a request waiting below for a connection to the app does not carry room
        // for this step's state. With many connections, most requests wait there.
        let authorize = Box::pin(self.authorizer.authorize(
            request.method(),
            &route_path,
            target.path_and_query.query(),
            request.headers(),
        ));
        let token = match authorize.await {
            Ok(token) => token,
            Err(failure) => {
                drain_rejected_body(request).await;
                let response = failure
                    .to_response(&self.realm)
                    .map(|body| body.map_err(|never| match never {}).boxed_unsync());
                return Outcome::rejected(response, failure.reason());
            }
        };

        let (mut parts, body) = request.into_parts();
        // Hop-by-hop removal comes first: a `Connection` header naming an identity header
        // must not be able to remove one the sidecar sets below.
        remove_hop_by_hop(&mut parts.headers);
        remove_routing_overrides(&mut parts.headers);
        // The listener handles `Expect: 100-continue` itself (hyper sends `100 Continue` when
        // the body is first read for forwarding), so the app must not act on it again.
        parts.headers.remove(EXPECT);
        identity::strip_identity_headers(&mut parts.headers);
        if let Some(token) = &token {
            identity::set_identity_headers(&mut parts.headers, token, &self.claim_headers);
        }
        // The app gets the origin-form target the route was matched on.
        parts.uri = Uri::from(target.path_and_query);
        if !self.forward_authorization {
            bearer::strip_token(&mut parts, self.authorizer.token_sources());
        }
        append_forwarded_for(&mut parts.headers, connection.peer.ip());
        set_forwarded_proto(&mut parts.headers, connection.tls);
        // HTTP/2 and absolute-form targets carry the host in the target, but an HTTP/1.1
        // app expects it in `Host`.
        if !parts.headers.contains_key(HOST) {
            let value = target
                .authority
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok());
            if let Some(value) = value {
                parts.headers.insert(HOST, value);
            }
        }
        parts.uri = upstream_uri(&self.upstream, parts.uri.path_and_query());
        parts.version = if self.upstream_http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };

        match self
            .client
            .send(Request::from_parts(parts, body), self.upstream_timeout)
            .await
        {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                Outcome {
                    response: Response::from_parts(parts, body.boxed_unsync()),
                    token,
                    reason: None,
                }
            }
            Err(err) => {
                let kind = err.kind();
                tracing::warn!(peer = %connection.peer, upstream = %self.upstream, error = %err, "forwarding to the app failed");
                metrics
                    .upstream_errors
                    .with_label_values(&[Direction::Inbound.label(), kind.label()])
                    .inc();
                Outcome {
                    response: self.upstream_failure_response(kind),
                    token,
                    reason: Some(kind.label()),
                }
            }
        }
    }

    /// Builds the response downstream clients get when the app cannot be reached. It names
    /// no address, because the client is outside the pod and the log has the details.
    fn upstream_failure_response(&self, kind: FailureKind) -> Response<ProxyBody> {
        let body = match kind {
            FailureKind::Timeout => json!({
                "error": "upstream_timeout",
                "message": format!(
                    "the service did not send a response within {} seconds",
                    self.upstream_timeout.as_secs()
                ),
            }),
            FailureKind::ConnectTimeout => json!({
                "error": "upstream_connect_timeout",
                "message": format!(
                    "the service did not accept a connection within the connect timeout (upstream_connect_timeout_secs = {})",
                    self.upstream_connect_timeout.as_secs()
                ),
            }),
            FailureKind::InvalidResponse => json!({
                "error": "upstream_invalid_response",
                "message": "the service behind this proxy sent a response with invalid or ambiguous framing",
            }),
            _ => json!({
                "error": "upstream_unavailable",
                "message": "the service behind this proxy could not be reached",
            }),
        };
        json_response(kind.status(), &body)
    }

    /// Builds the 400 for a target that failed [`target::check`] and counts it in
    /// `portcullis_request_rejections_total`. Path problems keep the RFC 6750 form every
    /// other invalid request gets.
    fn reject_target(&self, error: TargetError, metrics: &Metrics) -> Outcome {
        metrics
            .request_rejections
            .with_label_values(&[Direction::Inbound.label(), error.label()])
            .inc();
        if let TargetError::Path(problem) = error {
            let failure = AuthFailure::InvalidRequest(InvalidRequest::UnsafePath(problem));
            let response = failure
                .to_response(&self.realm)
                .map(|body| body.map_err(|never| match never {}).boxed_unsync());
            return Outcome::rejected(response, failure.reason());
        }
        let body = json!({ "error": "invalid_request", "message": error.to_string() });
        Outcome::rejected(
            json_response(StatusCode::BAD_REQUEST, &body),
            "invalid_target",
        )
    }
}

impl Handler for Inbound {
    async fn handle(
        &self,
        request: Request<RequestBody>,
        connection: ConnectionInfo,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let state = self.current();
        let method: Method = request.method().clone();

        let (outcome, path) = match target::check(&request) {
            Ok(target) => {
                // Shares the target's bytes instead of copying the path.
                let path = LoggedPath::Normal(target.path_and_query.clone());
                let outcome = state
                    .authorize_and_forward(request, target, connection, &self.metrics)
                    .await;
                (outcome, path)
            }
            Err(error) => {
                let path = LoggedPath::Received(request.uri().path().to_owned());
                drain_rejected_body(request).await;
                (state.reject_target(error, &self.metrics), path)
            }
        };

        access_log::record(
            &self.metrics,
            &RequestRecord {
                direction: Direction::Inbound,
                method: &method,
                path: path.as_str(),
                status: outcome.response.status(),
                started,
                subject: outcome.token.as_ref().and_then(|token| token.subject()),
                reason: outcome.reason,
            },
        );
        outcome.response
    }
}

/// Largest rejected request body read before the rejection is sent: the book's order is well
/// under 1 KiB, and a larger upload is not worth receiving only to throw it away.
const REJECTED_BODY_DRAIN_LIMIT: usize = 64 * 1024;
/// Maximum wait for a rejected request's body, so a slow sender cannot hold the stream open.
const REJECTED_BODY_DRAIN_TIME: Duration = Duration::from_secs(1);

/// Reads and discards the body of a rejected HTTP/2 request, up to a small bound, before the
/// rejection is sent.
///
/// When a response completes while the client is still sending, hyper resets the stream, and
/// some clients then report a framing error instead of the 401 (curl 7.88 prints `curl: (92)
/// Stream error in the HTTP/2 framing layer` for the book's POST without a token). Bodies over
/// the limit or slower than the time bound, and requests waiting for `100 Continue`, are not
/// read: those get the rejection at once and the stream is reset as before. HTTP/1.1 needs no
/// draining because the connection is closed instead.
async fn drain_rejected_body(request: Request<RequestBody>) {
    if request.version() != Version::HTTP_2
        || request.headers().contains_key(EXPECT)
        || request.body().is_end_stream()
    {
        return;
    }
    let limited = Limited::new(request.into_body(), REJECTED_BODY_DRAIN_LIMIT);
    // The outcome does not matter: the body is discarded either way.
    let _ = tokio::time::timeout(REJECTED_BODY_DRAIN_TIME, limited.collect()).await;
}

/// The path the access log names: the normal form of a target that passed the checks, or
/// the path as received when the target was rejected.
enum LoggedPath {
    Normal(PathAndQuery),
    Received(String),
}

impl LoggedPath {
    fn as_str(&self) -> &str {
        match self {
            LoggedPath::Normal(target) => target.path(),
            LoggedPath::Received(path) => path,
        }
    }
}
