//! Portcullis: a sidecar that enforces JWT bearer tokens in front of a plain HTTP app.
//!
//! Modules follow the request path:
//! - [`config`]: the TOML file, defaults and validation.
//! - [`tls`]: rustls server and client configurations.
//! - [`metrics`]: the Prometheus metrics every other module updates.
pub mod config;
pub mod metrics;
pub mod tls;
