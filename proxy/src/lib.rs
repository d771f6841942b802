//! Portcullis: a sidecar that enforces JWT bearer tokens in front of a plain HTTP app.
//!
//! Modules follow the request path:
//! - [`config`]: the TOML file, defaults and validation.
//! - [`tls`]: rustls server and client configurations.
//! - [`metrics`]: the Prometheus metrics every other module updates.
//! - [`keys`]: each issuer's JWKS, fetched, cached and refreshed.
//! - [`verify`]: token parsing, signature and claim checks, the verified-token cache.
//! - [`path`]: the request path normaliser whose output routes match and the app receives.
//! - [`policy`]: path safety checks, route matching, bearer extraction, scope checks.
//! - [`auth`]: the per-request decision and its RFC 6750 rejection responses.
//! - [`identity`]: the `x-portcullis-*` headers the app trusts.
//! - [`sidecar`]: [`start`] binds the listeners; [`RunningSidecar::shutdown`] drains them.
//! - [`inbound`]: authorize each request for the app, rewrite its headers, forward it.
//! - [`outbound`]: route the app's calls to other services by `Host`, never anywhere else.
//! - [`admin`]: `/healthz`, `/readyz` and `/metrics`.
//! - [`access_log`]: one log line and the request metrics per proxied request.
//! - [`shutdown`]: SIGTERM/SIGINT handling and the drain flag readiness reads.
//! - [`framing`]: strict HTTP/1.1 framing checks on the raw bytes, in front of hyper.
//! - [`server`]: the accept loop shared by every listener: TLS, HTTP/1.1 and HTTP/2, drain.
//! - [`upstream`]: the forwarding client, hop-by-hop and `X-Forwarded-*` header rules.
//! - [`inject`]: Kubernetes sidecar injection, `portcullis inject` and the admission webhook.
//! - [`probe`]: `portcullis probe`, the health check for images without a shell.
pub mod access_log;
pub mod admin;
pub mod auth;
pub mod config;
pub mod framing;
pub mod identity;
pub mod inbound;
pub mod inject;
pub mod keys;
pub mod metrics;
pub mod outbound;
pub mod path;
pub mod policy;
pub mod probe;
pub mod server;
pub mod shutdown;
pub mod sidecar;
pub mod tls;
pub mod upstream;
pub mod verify;

pub use sidecar::{start, RunningSidecar, StartError};
