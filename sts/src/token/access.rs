//! JWT access tokens in the RFC 9068 profile and the successful token response.

use jsonwebtoken::{encode, Header};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::KeySnapshot;

/// Media type of an RFC 9068 access token, sent as the JWT `typ` header.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Claims of an access token (RFC 9068 section 2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer URL.
    pub iss: String,
    /// Subject: the user for the password and refresh grants, the client id for client
    /// credentials.
    pub sub: String,
    /// Audiences, serialized as an array even when there is only one.
    pub aud: Vec<String>,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Issue time, in seconds since the Unix epoch.
    pub iat: u64,
    /// Not-before time, equal to `iat`.
    pub nbf: u64,
    /// Expiry time, in seconds since the Unix epoch.
    pub exp: u64,
    /// Unique token id: a random UUID.
    pub jti: String,
}

impl AccessTokenClaims {
    /// Builds claims issued at `now` (Unix seconds) and valid for `lifetime_secs` seconds.
    pub(crate) fn new(
        issuer: &str,
        subject: &str,
        client_id: &str,
        scopes: &[String],
        audiences: &[String],
        now: u64,
        lifetime_secs: u64,
    ) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: issuer.to_owned(),
            sub: subject.to_owned(),
            aud: audiences.to_vec(),
            client_id: client_id.to_owned(),
            scope: scopes.join(" "),
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime_secs),
            jti: Uuid::new_v4().to_string(),
        }
    }
}

/// Signs `claims` with the signing key of `keys`, with the `typ` and `kid` headers.
///
/// # Errors
///
/// The `jsonwebtoken` error when signing fails.
pub(crate) fn sign(
    keys: &KeySnapshot,
    claims: &AccessTokenClaims,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(keys.signing.algorithm.jwt_algorithm());
    header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
    header.kid = Some(keys.signing.kid.clone());
    encode(&header, claims, &keys.signing.encoding_key)
}

/// The successful token response (RFC 6749 section 5.1).
#[derive(Debug, Serialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}
