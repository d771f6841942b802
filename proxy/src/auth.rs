//! The per-request authorization decision the inbound listener makes, and its mapping to
//! RFC 6750 responses.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;

use crate::config::Config;
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::verify::{VerifiedToken, VerifyError};

/// Why a request was not authorized.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("a bearer token is required")]
    MissingToken,
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("invalid token: {0}")]
    InvalidToken(VerifyError),
    #[error("insufficient scope: requires {}", required.join(" "))]
    InsufficientScope { required: Vec<String> },
    #[error("the signing keys of issuer {issuer} are not loaded yet")]
    KeysUnavailable { issuer: String },
}

impl AuthFailure {
    /// The HTTP status of the rejection.
    pub fn status(&self) -> http::StatusCode {
        todo!()
    }

    /// Short label for logs and metrics (`missing_token`, `expired`, `bad_signature`, ...).
    pub fn reason(&self) -> &'static str {
        todo!()
    }

    /// The complete RFC 6750 response: status, WWW-Authenticate, JSON body.
    pub fn to_response(&self, realm: &str) -> http::Response<Full<Bytes>> {
        let _ = realm;
        todo!()
    }
}

/// Decides, per request, whether it may pass to the app.
pub struct Authorizer {
    _verifier: crate::verify::Verifier,
}

impl Authorizer {
    /// Builds the route table and the verifier from the configuration.
    pub fn new(config: &Config, keys: Arc<KeyStore>, metrics: Metrics) -> Authorizer {
        let verifier =
            crate::verify::Verifier::new(keys, &config.providers, &config.cache, metrics);
        Authorizer {
            _verifier: verifier,
        }
    }

    /// Finds the route, extracts the token, verifies it and checks scopes. Ok(None) for a
    /// route with auth = "none"; Ok(Some(token)) when verified; Err(failure) otherwise.
    pub async fn authorize(
        &self,
        method: &http::Method,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Result<Option<Arc<VerifiedToken>>, AuthFailure> {
        let _ = (method, path, headers);
        todo!()
    }
}
