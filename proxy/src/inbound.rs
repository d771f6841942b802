//! The inbound listener's request handler: authorize, rewrite headers, forward to the app.
//!
//! Every forwarded request loses client-sent identity headers and hop-by-hop headers, gains
//! the verified identity headers and `X-Forwarded-For`/`X-Forwarded-Proto`, and keeps its
//! body streaming. A rejected request gets its response here and never reaches the app.

use std::time::{Duration, Instant};

use http::header::HOST;
use http::{HeaderValue, Method, Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::access_log::{self, Direction, RequestRecord};
use crate::auth::{bearer, Authorizer};
use crate::config::{ClaimHeader, InboundConfig};
use crate::identity;
use crate::metrics::Metrics;
use crate::server::{ConnectionInfo, Handler};
use crate::upstream::headers::{append_forwarded_for, remove_hop_by_hop, set_forwarded_proto};
use crate::upstream::{json_response, upstream_uri, FailureKind, ProxyBody, UpstreamClient};

/// Handles the requests that arrive for the app.
pub struct Inbound {
    authorizer: Authorizer,
    client: UpstreamClient,
    upstream: Uri,
    realm: String,
    forward_authorization: bool,
    upstream_timeout: Duration,
    claim_headers: Vec<ClaimHeader>,
    metrics: Metrics,
}

/// The response and what the access log needs to know about how it came about.
struct Outcome {
    response: Response<ProxyBody>,
    subject: Option<String>,
    reason: Option<&'static str>,
}

impl Inbound {
    pub fn new(
        config: &InboundConfig,
        claim_headers: &[ClaimHeader],
        authorizer: Authorizer,
        metrics: Metrics,
    ) -> Inbound {
        Inbound {
            authorizer,
            client: UpstreamClient::plain(),
            upstream: config.upstream.clone(),
            realm: config.realm.clone(),
            forward_authorization: config.forward_authorization,
            upstream_timeout: config.upstream_timeout,
            claim_headers: claim_headers.to_vec(),
            metrics,
        }
    }

    async fn authorize_and_forward(
        &self,
        request: Request<Incoming>,
        method: &Method,
        path: &str,
        connection: ConnectionInfo,
    ) -> Outcome {
        let token = match self
            .authorizer
            .authorize(method, path, request.uri().query(), request.headers())
            .await
        {
            Ok(token) => token,
            Err(failure) => {
                let response = failure
                    .to_response(&self.realm)
                    .map(|body| body.map_err(|never| match never {}).boxed_unsync());
                return Outcome {
                    response,
                    subject: None,
                    reason: Some(failure.reason()),
                };
            }
        };

        let (mut parts, body) = request.into_parts();
        // Hop-by-hop removal comes first: a `Connection` header naming an identity header
        // must not be able to remove one the sidecar sets below.
        remove_hop_by_hop(&mut parts.headers);
        identity::strip_identity_headers(&mut parts.headers);
        if let Some(token) = &token {
            identity::set_identity_headers(&mut parts.headers, token, &self.claim_headers);
        }
        if !self.forward_authorization {
            bearer::strip_token(&mut parts, self.authorizer.token_sources());
        }
        append_forwarded_for(&mut parts.headers, connection.peer.ip());
        set_forwarded_proto(&mut parts.headers, connection.tls);
        // HTTP/2 carries the host in `:authority`, but an HTTP/1.1 app expects it in `Host`.
        if !parts.headers.contains_key(HOST) {
            let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
            if let Some(value) = authority.and_then(|a| HeaderValue::from_str(&a).ok()) {
                parts.headers.insert(HOST, value);
            }
        }
        parts.uri = upstream_uri(&self.upstream, parts.uri.path_and_query());
        // The app speaks HTTP/1.1 whatever the downstream used.
        parts.version = Version::HTTP_11;

        let subject = token.as_ref().and_then(|token| token.subject.clone());
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
                    subject,
                    reason: None,
                }
            }
            Err(err) => {
                let kind = err.kind();
                tracing::warn!(upstream = %self.upstream, error = %err, "forwarding to the app failed");
                self.metrics
                    .upstream_errors
                    .with_label_values(&[Direction::Inbound.label(), kind.label()])
                    .inc();
                Outcome {
                    response: upstream_failure_response(kind, self.upstream_timeout),
                    subject,
                    reason: Some(kind.label()),
                }
            }
        }
    }
}

impl Handler for Inbound {
    async fn handle(
        &self,
        request: Request<Incoming>,
        connection: ConnectionInfo,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();

        let outcome = self
            .authorize_and_forward(request, &method, &path, connection)
            .await;

        access_log::record(
            &self.metrics,
            &RequestRecord {
                direction: Direction::Inbound,
                method: &method,
                path: &path,
                status: outcome.response.status(),
                started,
                subject: outcome.subject.as_deref(),
                reason: outcome.reason,
            },
        );
        outcome.response
    }
}

/// Builds the response downstream clients get when the app cannot be reached. It names no
/// address, because the client is outside the pod and the log has the details.
fn upstream_failure_response(kind: FailureKind, timeout: Duration) -> Response<ProxyBody> {
    let body = match kind {
        FailureKind::Timeout => json!({
            "error": "upstream_timeout",
            "message": format!("the service did not send a response within {} seconds", timeout.as_secs()),
        }),
        _ => json!({
            "error": "upstream_unavailable",
            "message": "the service behind this proxy could not be reached",
        }),
    };
    json_response(kind.status(), &body)
}
