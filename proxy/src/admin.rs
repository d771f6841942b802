//! The admin listener: liveness (`/healthz`), readiness (`/readyz`) and Prometheus metrics
//! (`/metrics`). It serves plain HTTP and is meant to listen on loopback or the pod network
//! only.

use std::sync::{Arc, RwLock};

use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;

use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::server::{ConnectionInfo, Handler};
use crate::shutdown::DrainFlag;
use crate::upstream::{full_body, json_response, ProxyBody, RequestBody};

/// The content type of the Prometheus text exposition format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Handler for the admin endpoints of one sidecar.
pub struct Admin {
    metrics: Metrics,
    /// Replaced when a reload changes the providers.
    keys: RwLock<Arc<KeyStore>>,
    drain: DrainFlag,
}

impl Admin {
    pub fn new(metrics: Metrics, keys: Arc<KeyStore>, drain: DrainFlag) -> Admin {
        Admin {
            metrics,
            keys: RwLock::new(keys),
            drain,
        }
    }

    /// Makes readiness follow `keys` from now on.
    pub fn set_keys(&self, keys: Arc<KeyStore>) {
        // A poisoned lock only means a panic elsewhere while swapping; the slot is valid.
        *self.keys.write().unwrap_or_else(|err| err.into_inner()) = keys;
    }

    fn keys_ready(&self) -> bool {
        let keys = self.keys.read().unwrap_or_else(|err| err.into_inner());
        keys.is_ready()
    }

    /// Returns 200 when every provider has keys and no shutdown has started, else 503 with the
    /// reason, so a load balancer sends traffic only to a sidecar that can verify tokens.
    fn readiness(&self) -> Response<ProxyBody> {
        let reason = if self.drain.is_draining() {
            "shutting down"
        } else if !self.keys_ready() {
            "signing keys not loaded: the JWKS of at least one provider has not been fetched yet, or no fetch has succeeded within its max_key_staleness_secs"
        } else {
            return text_response(StatusCode::OK, "text/plain; charset=utf-8", "ready\n");
        };
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "not_ready", "reason": reason }),
        )
    }
}

impl Handler for Admin {
    async fn handle(
        &self,
        request: Request<RequestBody>,
        _connection: ConnectionInfo,
    ) -> Response<ProxyBody> {
        let path = request.uri().path();
        let known = matches!(path, "/healthz" | "/readyz" | "/metrics");
        if !known {
            return json_response(
                StatusCode::NOT_FOUND,
                &json!({
                    "error": "not_found",
                    "message": format!("no admin endpoint at {path}; use /healthz, /readyz or /metrics"),
                }),
            );
        }
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            let mut response = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({ "error": "method_not_allowed", "message": "admin endpoints accept GET only" }),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match path {
            "/healthz" => text_response(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
            "/readyz" => self.readiness(),
            _ => text_response(
                StatusCode::OK,
                PROMETHEUS_CONTENT_TYPE,
                self.metrics.render(),
            ),
        }
    }
}

fn text_response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
