//! Discovery documents: OAuth 2.0 Authorization Server Metadata (RFC 8414) and the OpenID
//! Connect Discovery document, both derived from the configured issuer.
//!
//! The service issues access tokens only: it has no authorization endpoint and issues no
//! ID tokens. The OpenID document exists for verifiers that discover `jwks_uri` through it.
//! Its `id_token_signing_alg_values_supported`, which OpenID Connect Discovery requires,
//! names the access token signing algorithm, and `authorization_endpoint`, also required
//! there, is absent because no such endpoint exists.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::config::{GrantType, Settings};

/// Path of the token endpoint.
pub(crate) const TOKEN_PATH: &str = "/oauth/token";
/// Path of the JWKS document.
pub(crate) const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the OpenID Connect Discovery document.
pub(crate) const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// Path of the RFC 8414 metadata document.
pub(crate) const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// Both documents, encoded once at startup.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    pub oauth: Bytes,
    pub openid: Bytes,
}

impl Metadata {
    pub(crate) fn new(settings: &Settings) -> Metadata {
        let oauth = oauth_document(settings);
        let mut openid = oauth.clone();
        if let Value::Object(fields) = &mut openid {
            fields.insert("subject_types_supported".to_owned(), json!(["public"]));
            fields.insert(
                "id_token_signing_alg_values_supported".to_owned(),
                json!([settings.signing_algorithm.as_str()]),
            );
        }
        Metadata {
            oauth: encode(&oauth),
            openid: encode(&openid),
        }
    }
}

fn oauth_document(settings: &Settings) -> Value {
    let issuer = &settings.issuer;
    let grants: Vec<&str> = GrantType::ALL
        .into_iter()
        .filter(|grant| settings.clients.iter().any(|client| client.allows(*grant)))
        .map(GrantType::as_str)
        .collect();
    let mut scopes: Vec<&str> = Vec::new();
    for scope in settings.clients.iter().flat_map(|client| &client.scopes) {
        if !scopes.contains(&scope.as_str()) {
            scopes.push(scope);
        }
    }
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "grant_types_supported": grants,
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        // RFC 8414 requires the member; without an authorization endpoint no response
        // type is supported.
        "response_types_supported": [],
    })
}

fn encode(document: &Value) -> Bytes {
    // A `Value` always serializes.
    Bytes::from(serde_json::to_vec(document).unwrap_or_default())
}
