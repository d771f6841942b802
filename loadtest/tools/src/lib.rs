//! Tools behind the Portcullis load tests and the `loadtest/bench` runner.
//!
//! - [`keys`]: signing keys and their public forms (JWKS for Portcullis and Envoy, a PEM
//!   public key for HAProxy).
//! - [`tokens`]: signed token sets: valid, expired, forged, and many unique valid tokens.
//! - [`files`]: atomic file writes with chosen permissions.
//! - [`upstream`]: the minimal HTTP/1.1 app every contender forwards to.
//!
//! The `bench-tokens` and `bench-upstream` binaries are thin command lines over these.

pub mod files;
pub mod keys;
pub mod tokens;
pub mod upstream;
