//! The outbound listener's request handler: the local app sends its calls to other services
//! here, and each is forwarded to the configured upstream of the service it names.
//!
//! The service is chosen by the authority of an absolute-form request URI (as sent to an
//! HTTP proxy, and as HTTP/2 always sends it) or else by the `Host` header, port ignored,
//! case-insensitive. A name that is not configured is rejected without sending anything, so
//! the sidecar cannot be used as an open proxy. `Authorization` and every other end-to-end
//! header pass unchanged, so the peer's sidecar verifies the caller's token itself.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http::header::HOST;
use http::uri::Authority;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use rustls::pki_types::ServerName;
use serde_json::json;

use crate::access_log::{self, Direction, RequestRecord};
use crate::config::{OutboundConfig, OutboundService};
use crate::metrics::Metrics;
use crate::server::{ConnectionInfo, Handler};
use crate::tls::{self, TlsError};
use crate::upstream::headers::remove_hop_by_hop;
use crate::upstream::{
    host_value, json_response, upstream_uri, ProxyBody, RequestBody, UpstreamClient,
    UpstreamMetrics, UpstreamOptions,
};

/// An outbound service whose client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("outbound service `{service}`: {source}")]
    Tls { service: String, source: TlsError },
    #[error("outbound service `{service}` has the https:// upstream {upstream} but no `tls` section; add tls.ca with the CA that signs the peer's certificate")]
    TlsMissing { service: String, upstream: Uri },
    #[error("outbound service `{service}` has a `tls` section but the plain upstream {upstream}; use an https:// upstream or remove the tls section")]
    TlsOnPlainUpstream { service: String, upstream: Uri },
    #[error("outbound service `{service}` sets only one of tls.cert and tls.key; set both to present a client certificate, or neither")]
    IncompleteIdentity { service: String },
    #[error("outbound service `{service}`: tls.server_name `{server_name}` is not a valid DNS name or IP address")]
    InvalidServerName {
        service: String,
        server_name: String,
    },
}

/// A configured service and the client that reaches it.
struct Route {
    name: String,
    upstream: Uri,
    /// The upstream's authority, sent as `Host`.
    host: Option<HeaderValue>,
    client: UpstreamClient,
}

/// Handles the requests the local app sends to other services. [`Outbound::replace`]
/// swaps in a new set of services; requests already running finish with the old one.
pub struct Outbound {
    services: RwLock<Arc<Services>>,
    metrics: Metrics,
}

/// The configured services and the response timeout.
struct Services {
    routes: Vec<Route>,
    upstream_timeout: Duration,
}

/// The response and the access log's reason for it.
struct Outcome {
    response: Response<ProxyBody>,
    reason: Option<&'static str>,
}

impl Outbound {
    /// Builds a client per service, loading TLS files now so a bad file stops startup.
    pub fn new(config: &OutboundConfig, metrics: Metrics) -> Result<Outbound, OutboundError> {
        let routes = config
            .services
            .iter()
            .map(|service| {
                let upstream_metrics = UpstreamMetrics::new(metrics.clone(), Direction::Outbound);
                build_route(service, config.upstream_connect_timeout, upstream_metrics)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let services = Services {
            routes,
            upstream_timeout: config.upstream_timeout,
        };
        Ok(Outbound {
            services: RwLock::new(Arc::new(services)),
            metrics,
        })
    }

    /// Takes over the services of `other` for requests that start from now on.
    pub fn replace(&self, other: Outbound) {
        let services = other
            .services
            .into_inner()
            .unwrap_or_else(|err| err.into_inner());
        // A poisoned lock only means a panic elsewhere while swapping; the slot is valid.
        *self.services.write().unwrap_or_else(|err| err.into_inner()) = services;
    }

    fn current(&self) -> Arc<Services> {
        Arc::clone(&self.services.read().unwrap_or_else(|err| err.into_inner()))
    }

    async fn forward(&self, request: Request<RequestBody>) -> Outcome {
        if request.method() == Method::CONNECT {
            let body = json!({
                "error": "method_not_allowed",
                "message": "CONNECT tunnels are not supported; send plain HTTP requests with the service name as the Host",
            });
            return Outcome {
                response: json_response(StatusCode::METHOD_NOT_ALLOWED, &body),
                reason: Some("connect_rejected"),
            };
        }

        let Some(host) = target_host(&request) else {
            let body = json!({
                "error": "missing_host",
                "message": "the request names no service; set the Host header to a configured service name",
            });
            return Outcome {
                response: json_response(StatusCode::BAD_REQUEST, &body),
                reason: Some("missing_host"),
            };
        };
        let services = self.current();
        let Some(route) = services.routes.iter().find(|route| route.name == host) else {
            return self.reject_unknown(&services, &host);
        };

        let (mut parts, body) = request.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        match &route.host {
            Some(value) => parts.headers.insert(HOST, value.clone()),
            None => parts.headers.remove(HOST),
        };
        parts.uri = upstream_uri(&route.upstream, parts.uri.path_and_query());
        parts.version = Version::HTTP_11;

        match route
            .client
            .send(Request::from_parts(parts, body), services.upstream_timeout)
            .await
        {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                Outcome {
                    response: Response::from_parts(parts, body.boxed_unsync()),
                    reason: None,
                }
            }
            Err(err) => {
                let kind = err.kind();
                tracing::warn!(service = %route.name, upstream = %route.upstream, error = %err, "forwarding to the service failed");
                self.count_upstream_error(kind.label());
                // The caller is the local app, so naming the service and upstream helps it.
                let body = json!({
                    "error": format!("upstream_{}", kind.label()),
                    "message": format!("service `{}` at {} failed: {err}", route.name, route.upstream),
                });
                Outcome {
                    response: json_response(kind.status(), &body),
                    reason: Some(kind.label()),
                }
            }
        }
    }

    fn reject_unknown(&self, services: &Services, host: &str) -> Outcome {
        let known: Vec<&str> = services.routes.iter().map(|r| r.name.as_str()).collect();
        tracing::warn!(
            host,
            "outbound request for a service that is not configured; nothing was sent"
        );
        self.count_upstream_error("unknown_service");
        let body = json!({
            "error": "unknown_service",
            "message": format!(
                "no outbound service is named `{host}`; add an [[outbound.services]] entry with name = \"{host}\" to the sidecar config, or call one of: {}",
                if known.is_empty() { "(none configured)".to_owned() } else { known.join(", ") }
            ),
        });
        Outcome {
            response: json_response(StatusCode::BAD_GATEWAY, &body),
            reason: Some("unknown_service"),
        }
    }

    fn count_upstream_error(&self, kind: &str) {
        self.metrics
            .upstream_errors
            .with_label_values(&[Direction::Outbound.label(), kind])
            .inc();
    }
}

impl Handler for Outbound {
    async fn handle(
        &self,
        request: Request<RequestBody>,
        _connection: ConnectionInfo,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();

        let outcome = self.forward(request).await;

        access_log::record(
            &self.metrics,
            &RequestRecord {
                direction: Direction::Outbound,
                method: &method,
                path: &path,
                status: outcome.response.status(),
                started,
                subject: None,
                reason: outcome.reason,
            },
        );
        outcome.response
    }
}

/// Returns the lower-case host the request is addressed to: the URI's authority when the request is
/// in absolute form (or HTTP/2), else the `Host` header. The port and a trailing dot are
/// dropped.
fn target_host<B>(request: &Request<B>) -> Option<String> {
    let host = match request.uri().authority() {
        Some(authority) => authority.host().to_owned(),
        None => {
            let value = request.headers().get(HOST)?.to_str().ok()?;
            value.parse::<Authority>().ok()?.host().to_owned()
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn build_route(
    service: &OutboundService,
    connect_timeout: Duration,
    metrics: UpstreamMetrics,
) -> Result<Route, OutboundError> {
    let is_https = service.upstream.scheme_str() == Some("https");
    let client = match (&service.tls, is_https) {
        (None, false) => UpstreamClient::plain(
            UpstreamOptions {
                connect_timeout,
                http2: false,
                max_connections: None,
            },
            metrics,
        ),
        (None, true) => {
            return Err(OutboundError::TlsMissing {
                service: service.name.clone(),
                upstream: service.upstream.clone(),
            })
        }
        (Some(_), false) => {
            return Err(OutboundError::TlsOnPlainUpstream {
                service: service.name.clone(),
                upstream: service.upstream.clone(),
            })
        }
        (Some(tls_config), true) => {
            let identity = match (&tls_config.cert, &tls_config.key) {
                (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
                (None, None) => None,
                _ => {
                    return Err(OutboundError::IncompleteIdentity {
                        service: service.name.clone(),
                    })
                }
            };
            let config = tls::client_config(&tls_config.ca, identity).map_err(|source| {
                OutboundError::Tls {
                    service: service.name.clone(),
                    source,
                }
            })?;
            let server_name = tls_config
                .server_name
                .as_ref()
                .map(|name| {
                    ServerName::try_from(name.clone()).map_err(|_| {
                        OutboundError::InvalidServerName {
                            service: service.name.clone(),
                            server_name: name.clone(),
                        }
                    })
                })
                .transpose()?;
            UpstreamClient::tls(config, server_name, connect_timeout, metrics)
        }
    };
    Ok(Route {
        name: service.name.clone(),
        upstream: service.upstream.clone(),
        host: host_value(&service.upstream),
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, host: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().uri(uri);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn host_header_port_and_case_ignored() {
        let request = request("/inventory", Some("Inventory:8080"));
        assert_eq!(target_host(&request).as_deref(), Some("inventory"));
    }

    #[test]
    fn absolute_form_authority_wins_over_host() {
        let request = request("http://inventory/items?x=1", Some("other"));
        assert_eq!(target_host(&request).as_deref(), Some("inventory"));
    }

    #[test]
    fn trailing_dot_dropped() {
        let request = request("/", Some("inventory."));
        assert_eq!(target_host(&request).as_deref(), Some("inventory"));
    }

    #[test]
    fn missing_host_is_none() {
        assert_eq!(target_host(&request("/", None)), None);
        assert_eq!(target_host(&request("/", Some(""))), None);
    }
}
