//! One access log line per proxied request, on the `portcullis::access` tracing target, and
//! the request metrics recorded with it.
//!
//! The line carries the path without its query string, because queries can carry tokens
//! (`?access_token=`), and never any header value.

use std::time::Instant;

use http::{Method, StatusCode};

use crate::metrics::Metrics;

/// The listener that handled a request, used as the `direction` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// The facts about a request that are known when its response headers are sent.
#[derive(Debug)]
pub struct RequestRecord<'a> {
    pub direction: Direction,
    pub method: &'a Method,
    /// The request path, without the query string.
    pub path: &'a str,
    pub status: StatusCode,
    /// When the request headers were received.
    pub started: Instant,
    /// The verified token's `sub`, when the request carried one.
    pub subject: Option<&'a str>,
    /// The reason the sidecar wrote the response itself: an auth rejection (`expired`, `missing_token`, ...)
    /// or an upstream failure (`connect`, `timeout`, `unknown_service`, ...).
    pub reason: Option<&'a str>,
}

/// Writes the access log line and counts the request in `requests` and `request_duration`.
pub fn record(metrics: &Metrics, record: &RequestRecord<'_>) {
    let elapsed = record.started.elapsed();
    let direction = record.direction.label();
    metrics
        .requests
        .with_label_values(&[direction, record.status.as_str()])
        .inc();
    metrics
        .request_duration
        .with_label_values(&[direction])
        .observe(elapsed.as_secs_f64());

    tracing::info!(
        target: "portcullis::access",
        direction,
        method = %record.method,
        path = record.path,
        status = record.status.as_u16(),
        // Whole microseconds, so the log shows `0.04` rather than a float's noise digits.
        duration_ms = (elapsed.as_secs_f64() * 1_000_000.0).round() / 1000.0,
        subject = record.subject.unwrap_or("-"),
        reason = record.reason.unwrap_or("-"),
        "request"
    );
}
