//! Prometheus metrics, all named `portcullis_*` with the unit in the name. One [`Metrics`]
//! value per sidecar owns its own registry, so several sidecars can run in one process (the
//! demo and the tests do).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Every metric the sidecar exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by `direction` (`inbound`, `outbound`) and response `status` code.
    pub requests: IntCounterVec,
    /// Request duration in seconds by `direction`, from headers received to response headers
    /// sent.
    pub request_duration: HistogramVec,
    /// Token checks by `result`: `valid`, or the rejection reason (`expired`, `bad_signature`…).
    pub verifications: IntCounterVec,
    /// Requests the auth check rejected, by `reason`: a fixed label such as `missing_token`,
    /// `ambiguous_token`, `insufficient_scope` or a token rejection reason. Never token text.
    pub auth_rejections: IntCounterVec,
    /// JWKS fetches by `issuer` and `result` (`ok`, `error`).
    pub jwks_fetches: IntCounterVec,
    /// Usable keys currently loaded, by `issuer`.
    pub keys_loaded: IntGaugeVec,
    /// Verified-token cache lookups that found a valid entry.
    pub cache_hits: IntCounter,
    /// Verified-token cache lookups that had to verify the signature.
    pub cache_misses: IntCounter,
    /// Failures to get a response from an upstream, by `direction` and `kind`
    /// (`connect`, `connect_timeout`, `timeout`, `tls`, `protocol`, `invalid_response`,
    /// `unknown_service`).
    pub upstream_errors: IntCounterVec,
    /// Requests a listener rejected before any handler saw them, by `listener` and `reason`:
    /// a framing or limit violation ([`crate::framing::RejectionReason`]) or, on the inbound
    /// listener, a request target or `Host` problem.
    pub request_rejections: IntCounterVec,
    /// Upstream HTTP/1 responses the response guard rejected, by `direction` and `reason`.
    pub upstream_response_rejections: IntCounterVec,
    /// Downstream connections closed at once because `max_connections` were open, by
    /// `listener`.
    pub connections_refused: IntCounterVec,
    /// Requests sent upstream a second time after the first connection was refused, by
    /// `direction`.
    pub upstream_retries: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them in a new registry.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "portcullis_requests_total",
                "Requests handled, by direction and status.",
            ),
            &["direction", "status"],
        )
        // Metric names and labels are constants, so construction cannot fail.
        .expect("static metric definition is valid");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "portcullis_request_duration_seconds",
                "Time from request headers received to response headers sent, by direction.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["direction"],
        )
        .expect("static metric definition is valid");
        let verifications = IntCounterVec::new(
            Opts::new(
                "portcullis_token_verifications_total",
                "Token checks, by result: valid or the rejection reason.",
            ),
            &["result"],
        )
        .expect("static metric definition is valid");
        let auth_rejections = IntCounterVec::new(
            Opts::new(
                "portcullis_auth_rejections_total",
                "Requests rejected by the auth check, by reason.",
            ),
            &["reason"],
        )
        .expect("static metric definition is valid");
        let jwks_fetches = IntCounterVec::new(
            Opts::new(
                "portcullis_jwks_fetches_total",
                "JWKS fetches, by issuer and result.",
            ),
            &["issuer", "result"],
        )
        .expect("static metric definition is valid");
        let keys_loaded = IntGaugeVec::new(
            Opts::new(
                "portcullis_jwks_keys",
                "Usable signing keys loaded, by issuer.",
            ),
            &["issuer"],
        )
        .expect("static metric definition is valid");
        let cache_hits = IntCounter::new(
            "portcullis_token_cache_hits_total",
            "Verified-token cache lookups that found a valid entry.",
        )
        .expect("static metric definition is valid");
        let cache_misses = IntCounter::new(
            "portcullis_token_cache_misses_total",
            "Verified-token cache lookups that needed a full verification.",
        )
        .expect("static metric definition is valid");
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "portcullis_upstream_errors_total",
                "Requests that got no response from the upstream, by direction and kind.",
            ),
            &["direction", "kind"],
        )
        .expect("static metric definition is valid");

        let request_rejections = counter_vec(
            "portcullis_request_rejections_total",
            "Requests rejected before any handler saw them (framing, limits, head timeout, target and Host), by listener and reason.",
            &["listener", "reason"],
        );
        let upstream_response_rejections = counter_vec(
            "portcullis_upstream_response_rejections_total",
            "Upstream HTTP/1 responses rejected for their framing, by direction and reason.",
            &["direction", "reason"],
        );
        let connections_refused = counter_vec(
            "portcullis_connections_refused_total",
            "Downstream connections closed at once because the connection limit was reached, by listener.",
            &["listener"],
        );
        let upstream_retries = counter_vec(
            "portcullis_upstream_retries_total",
            "Requests sent upstream again after the connection was refused, by direction.",
            &["direction"],
        );

        let metrics = Metrics {
            registry,
            requests,
            request_duration,
            verifications,
            auth_rejections,
            jwks_fetches,
            keys_loaded,
            cache_hits,
            cache_misses,
            upstream_errors,
            request_rejections,
            upstream_response_rejections,
            connections_refused,
            upstream_retries,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.requests.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.verifications.clone()),
            Box::new(self.auth_rejections.clone()),
            Box::new(self.jwks_fetches.clone()),
            Box::new(self.keys_loaded.clone()),
            Box::new(self.cache_hits.clone()),
            Box::new(self.cache_misses.clone()),
            Box::new(self.upstream_errors.clone()),
            Box::new(self.request_rejections.clone()),
            Box::new(self.upstream_response_rejections.clone()),
            Box::new(self.connections_refused.clone()),
            Box::new(self.upstream_retries.clone()),
        ];
        for collector in collectors {
            // A fresh registry holding distinct names cannot reject a registration.
            self.registry
                .register(collector)
                .expect("metric names are unique within a new registry");
        }
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Writing into a Vec cannot fail, so an error here means a malformed metric.
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %err, "failed to encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Creates a counter family from a constant definition.
fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels)
        // Every caller passes constant names and labels, so construction cannot fail.
        .expect("static metric definition is valid")
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
