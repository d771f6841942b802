//! Test support shared by the auth modules: claims and a provider for the test issuer, on top
//! of the keys, tokens and key server of the `portcullis-testkit` crate.

use std::time::Duration;

use http::Uri;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::config::{JwksSource, ProviderConfig};

pub use portcullis_testkit::{jwks, KeyServer, TestKey};

pub const ISSUER: &str = "https://sts.test";
pub const AUDIENCE: &str = "orders";
/// The fixed "now" of tests that control the verifier's clock: 2027-01-15T08:00:00Z.
pub const NOW: i64 = 1_800_000_000;

/// RFC 9068 claims from [`ISSUER`] for [`AUDIENCE`], valid from `now - 10` to `now + 3600`.
pub fn claims_at(now: i64) -> Value {
    json!({
        "iss": ISSUER,
        "sub": "peter",
        "aud": [AUDIENCE, "inventory"],
        "client_id": "applicationid",
        "scope": "foo bar",
        "iat": now - 10,
        "nbf": now - 10,
        "exp": now + 3600,
        "jti": "6d1f0b8c-2a1e-4c4e-9a55-0c2d1f7e9b10",
    })
}

/// Builds the claims of [`claims_at`] around the current system time.
pub fn current_claims() -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    claims_at(i64::try_from(now).expect("time fits i64"))
}

/// Builds a provider for [`ISSUER`] that reads its keys from `jwks`, with the configuration
/// defaults.
pub fn provider(jwks: JwksSource) -> ProviderConfig {
    ProviderConfig {
        issuer: ISSUER.to_owned(),
        audiences: vec![AUDIENCE.to_owned()],
        jwks,
        ca_file: None,
        algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
        leeway: Duration::from_secs(60),
        refresh_interval: Duration::from_secs(300),
        unknown_kid_cooldown: Duration::from_secs(30),
        fetch_timeout: Duration::from_secs(5),
        max_key_staleness: Duration::from_secs(86_400),
        max_token_lifetime: None,
        required_typ: None,
    }
}

/// The `portcullis` forms of a [`KeyServer`]'s JWKS address, which the test kit cannot name
/// because it does not depend on this crate.
pub trait KeyServerSource {
    fn uri(&self) -> Uri;
    fn source(&self) -> JwksSource;
}

impl KeyServerSource for KeyServer {
    fn uri(&self) -> Uri {
        self.jwks_uri().parse().expect("valid URI")
    }

    fn source(&self) -> JwksSource {
        JwksSource::Uri(self.uri())
    }
}
