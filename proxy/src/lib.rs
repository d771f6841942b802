//! Portcullis: a sidecar that enforces JWT bearer tokens in front of a plain HTTP app.
//!
//! Modules follow the request path:
//! - [`config`]: the TOML file, defaults and validation.
pub mod config;
