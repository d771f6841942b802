//! The per-request authorization decision the inbound listener makes, and the one place that
//! maps a failure to its RFC 6750 response.

pub mod bearer;
mod claims;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::config::{Config, TokenSources};
use crate::keys::KeyStore;
use crate::metrics::Metrics;
use crate::policy::{check_path, RouteDecision, RoutePolicy};
use crate::verify::{VerifiedToken, Verifier, VerifyError};
use bearer::extract_token;
use claims::{has_scopes, unmet_requirement};

pub use crate::policy::InvalidRequest;

/// Seconds a client should wait before retrying while keys are loading. The first fetch
/// retries within 5 seconds at most, so by then the keys are usually there.
const KEYS_UNAVAILABLE_RETRY_AFTER_SECS: u32 = 5;

/// The reason a request was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No token: no `Authorization` header or one with a scheme other than Bearer, and no
    /// token from a configured query parameter or cookie.
    #[error("a bearer token is required")]
    MissingToken,
    #[error("{0}")]
    InvalidRequest(InvalidRequest),
    #[error("invalid token: {0}")]
    InvalidToken(VerifyError),
    /// The token lacks a scope the route requires; `required` lists all of the route's scopes.
    #[error("insufficient scope: the route requires {}", required.join(" "))]
    InsufficientScope { required: Vec<String> },
    /// The token does not meet the route's requirement on `claim`. The response is the one
    /// for a missing scope (403 `insufficient_scope`), because the token is genuine but does
    /// not grant this request, and a refreshed token would carry the same claims.
    #[error("the token's claim {claim} does not meet the route's requirement")]
    ClaimNotSatisfied { claim: String },
    /// The token's issuer has no keys loaded yet, so the token cannot be checked. The request
    /// is not forwarded, and the client is asked to retry because the token may be valid.
    #[error("the signing keys of issuer {issuer} are not loaded yet")]
    KeysUnavailable { issuer: String },
}

impl AuthFailure {
    /// Returns the HTTP status of the rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthFailure::MissingToken | AuthFailure::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthFailure::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthFailure::InsufficientScope { .. } | AuthFailure::ClaimNotSatisfied { .. } => {
                StatusCode::FORBIDDEN
            }
            AuthFailure::KeysUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Returns a short label for logs and metrics (`missing_token`, `expired`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::InvalidRequest(invalid) => invalid.reason(),
            AuthFailure::InvalidToken(err) => err.reason(),
            AuthFailure::InsufficientScope { .. } => "insufficient_scope",
            AuthFailure::ClaimNotSatisfied { .. } => "claim_not_satisfied",
            AuthFailure::KeysUnavailable { .. } => "keys_unavailable",
        }
    }

    /// Builds the complete RFC 6750 response: status, `WWW-Authenticate`, and a JSON body with
    /// `error` and `error_description`, marked `Cache-Control: no-store`.
    ///
    /// A missing token gets a challenge without error attributes (RFC 6750 section 3.1).
    /// KeysUnavailable gets `Retry-After` and no challenge, because no credential would help.
    pub fn to_response(&self, realm: &str) -> Response<Full<Bytes>> {
        let (error, description) = match self {
            AuthFailure::MissingToken => ("unauthorized", "a bearer token is required".to_owned()),
            AuthFailure::InvalidRequest(invalid) => ("invalid_request", invalid.to_string()),
            AuthFailure::InvalidToken(err) => ("invalid_token", err.description()),
            AuthFailure::InsufficientScope { required } => (
                "insufficient_scope",
                format!("the request requires the scopes: {}", required.join(" ")),
            ),
            // Names the claim but not the expected values, which may be tenant or group names
            // the client has no business learning.
            AuthFailure::ClaimNotSatisfied { claim } => (
                "insufficient_scope",
                format!("the token's claim {claim:?} does not meet this route's requirement"),
            ),
            AuthFailure::KeysUnavailable { .. } => (
                "temporarily_unavailable",
                "the signing keys are not loaded yet; retry later".to_owned(),
            ),
        };

        let mut challenge = format!("Bearer realm={}", quoted_string(realm));
        match self {
            AuthFailure::MissingToken | AuthFailure::KeysUnavailable { .. } => {}
            AuthFailure::InsufficientScope { required } => {
                challenge.push_str(&format!(
                    ", error=\"insufficient_scope\", error_description={}, scope={}",
                    quoted_string(&description),
                    quoted_string(&required.join(" "))
                ));
            }
            _ => challenge.push_str(&format!(
                ", error=\"{error}\", error_description={}",
                quoted_string(&description)
            )),
        }

        let body = json!({ "error": error, "error_description": description }).to_string();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let AuthFailure::KeysUnavailable { .. } = self {
            headers.insert(
                RETRY_AFTER,
                HeaderValue::from(KEYS_UNAVAILABLE_RETRY_AFTER_SECS),
            );
        } else {
            // quoted_string removes every byte that a header value forbids, so this succeeds.
            // The fallback keeps a valid challenge if that ever changes.
            let value = HeaderValue::from_bytes(challenge.as_bytes())
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
            headers.insert(WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// Quotes `value` as an HTTP quoted-string (RFC 9110 section 5.6.4): `"` and `\` are
/// backslash-escaped, and control characters, which a header value cannot carry, become `?`.
fn quoted_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            c if c.is_control() => quoted.push('?'),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Decides, per request, whether it may pass to the app.
pub struct Authorizer {
    policy: RoutePolicy,
    verifier: Verifier,
    token_sources: TokenSources,
    metrics: Metrics,
}

impl Authorizer {
    /// Builds the route table and the verifier from the configuration. `keys` must be built
    /// from `config.providers`.
    pub fn new(config: &Config, keys: Arc<KeyStore>, metrics: Metrics) -> Authorizer {
        let verifier = Verifier::for_config(config, keys, metrics.clone());
        Authorizer {
            policy: RoutePolicy::new(config.routes.clone()),
            verifier,
            token_sources: config.token_sources.clone(),
            metrics,
        }
    }

    /// Returns where requests may carry their token, for [`bearer::strip_token`].
    pub fn token_sources(&self) -> &TokenSources {
        &self.token_sources
    }

    /// Finds the route, extracts the token, verifies it and checks scopes and claims.
    /// Ok(None) for a route with auth = "none"; Ok(Some(token)) when verified; Err(failure)
    /// otherwise. Every failure is counted in `portcullis_auth_rejections_total`.
    ///
    /// `path` is the request path and `query` the query without the `?`. Unsafe paths fail
    /// before route matching, on every route including open ones.
    pub async fn authorize(
        &self,
        method: &http::Method,
        path: &str,
        query: Option<&str>,
        headers: &http::HeaderMap,
    ) -> Result<Option<Arc<VerifiedToken>>, AuthFailure> {
        let result = self.authorize_uncounted(method, path, query, headers).await;
        if let Err(failure) = &result {
            self.metrics
                .auth_rejections
                .with_label_values(&[failure.reason()])
                .inc();
        }
        result
    }

    async fn authorize_uncounted(
        &self,
        method: &http::Method,
        path: &str,
        query: Option<&str>,
        headers: &http::HeaderMap,
    ) -> Result<Option<Arc<VerifiedToken>>, AuthFailure> {
        check_path(method, path)
            .map_err(|problem| AuthFailure::InvalidRequest(InvalidRequest::UnsafePath(problem)))?;
        let (scopes, claims) = match self.policy.decide(method, path) {
            RouteDecision::Open => return Ok(None),
            RouteDecision::TokenRequired { scopes, claims } => (scopes, claims),
        };

        let token = extract_token(headers, query, &self.token_sources)
            .map_err(|problem| AuthFailure::InvalidRequest(InvalidRequest::Credentials(problem)))?
            .ok_or(AuthFailure::MissingToken)?;
        let verified = self
            .verifier
            .verify(&token.text)
            .await
            .map_err(|err| match err {
                VerifyError::KeysUnavailable { issuer } => AuthFailure::KeysUnavailable { issuer },
                other => AuthFailure::InvalidToken(other),
            })?;

        if !has_scopes(scopes, verified.scopes()) {
            return Err(AuthFailure::InsufficientScope {
                required: scopes.to_vec(),
            });
        }
        // Only a route with claim requirements parses the whole payload, because a cached
        // token then keeps its parsed claims, several times the size of the JSON text.
        if !claims.is_empty() {
            let unmet = match verified.claims() {
                Some(payload) => unmet_requirement(claims, payload),
                // The authorizer keeps the payload whenever a route has claim requirements. A
                // token without it fails the first requirement instead of passing unchecked.
                None => claims.first(),
            };
            if let Some(unmet) = unmet {
                return Err(AuthFailure::ClaimNotSatisfied {
                    claim: unmet.claim.clone(),
                });
            }
        }
        Ok(Some(verified))
    }
}

#[cfg(test)]
mod tests;
