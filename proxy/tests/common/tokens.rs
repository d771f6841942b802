//! Fixtures for the token tests: default claims, raw token assembly, and sidecar
//! configurations with one or more providers. The signing keys and the key server, which
//! listens on 127.0.0.1, come from the `portcullis-testkit` crate.

use std::net::SocketAddr;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use serde_json::{json, Value};

use portcullis::config::Config;
use portcullis::RunningSidecar;

pub use portcullis_testkit::KeyServer;

use super::signing::{b64, TestKey};
use super::{now, wait_ready, Reply};

/// The issuer of the default provider.
pub const ISSUER: &str = "https://sts.test";
/// The audience of the default provider.
pub const AUDIENCE: &str = "orders";

/// Decodes a base64url segment, for tests that rework a signature.
pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).expect("base64url segment")
}

/// Joins already encoded segments into a compact JWS.
pub fn assemble(header_json: &str, payload_json: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header_json),
        b64(payload_json),
        b64(signature)
    )
}

/// Decodes a hexadecimal constant such as a curve order.
pub fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// RFC 9068 access-token claims from [`ISSUER`] for [`AUDIENCE`], valid for ten minutes.
pub fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "sub": "peter",
        "aud": [AUDIENCE, "inventory"],
        "client_id": "applicationid",
        "scope": "foo bar",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": format!("jti-{}", rand::random::<u64>()),
    })
}

/// Returns the default claims with `changes` merged in. A `null` change removes the claim.
pub fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    let object = claims.as_object_mut().expect("claims are an object");
    for (name, value) in changes.as_object().expect("changes are an object") {
        if value.is_null() {
            object.remove(name);
        } else {
            object.insert(name.clone(), value.clone());
        }
    }
    claims
}

/// Signs a token with the default claims of [`claims`].
pub trait SignDefaultClaims {
    fn token(&self) -> String;
}

impl SignDefaultClaims for TestKey {
    fn token(&self) -> String {
        self.sign(&claims())
    }
}

// ---------------------------------------------------------------------------------------
// Sidecar configuration

/// Returns the TOML of one `[[providers]]` entry that fetches keys from `server`. `extra` adds
/// lines to the entry, such as `leeway_secs = 5`.
pub fn provider_toml(issuer: &str, audience: &str, server: &KeyServer, extra: &str) -> String {
    format!(
        "[[providers]]\nissuer = {issuer:?}\naudiences = [{audience:?}]\njwks_uri = {:?}\nfetch_timeout_secs = 2\n{extra}\n",
        server.jwks_uri()
    )
}

/// Returns a whole sidecar configuration for an app at `app`, with every listener on port 0.
/// `body` contains the providers, routes and any other tables.
pub fn config_toml(app: SocketAddr, body: &str) -> String {
    config_toml_with(app, "", body)
}

/// Returns [`config_toml`] with `inbound_extra` lines added to `[inbound]`.
pub fn config_toml_with(app: SocketAddr, inbound_extra: &str, body: &str) -> String {
    format!(
        "[inbound]\nlisten = \"127.0.0.1:0\"\nupstream = \"http://{app}\"\n{inbound_extra}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n{body}"
    )
}

/// Starts an in-process sidecar from `toml` without waiting for its keys.
pub async fn start_unready(dir: &Path, toml: &str) -> RunningSidecar {
    let config = Config::from_toml(toml, dir)
        .unwrap_or_else(|err| panic!("invalid test config ({err}):\n{toml}"));
    portcullis::start(config).await.expect("sidecar starts")
}

/// Starts an in-process sidecar from `toml` and waits until it is ready.
pub async fn start(dir: &Path, toml: &str) -> RunningSidecar {
    let sidecar = start_unready(dir, toml).await;
    wait_ready(sidecar.admin_addr()).await;
    sidecar
}

// ---------------------------------------------------------------------------------------
// Assertions

/// Asserts a 401 `invalid_token` rejection: status, challenge and JSON body.
pub fn assert_invalid_token(reply: &Reply, case: &str) {
    assert_rejection(reply, StatusCode::UNAUTHORIZED, "invalid_token", case);
}

/// Asserts a rejection with `status` and RFC 6750 `error` code in both the JSON body and,
/// except for 503, the `WWW-Authenticate` challenge.
pub fn assert_rejection(reply: &Reply, status: StatusCode, error: &str, case: &str) {
    assert_eq!(reply.status, status, "{case}: {}", reply.body);
    let body = reply.json();
    assert_eq!(body["error"], error, "{case}: {}", reply.body);
    if status != StatusCode::SERVICE_UNAVAILABLE {
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{case}: challenge {challenge:?}"
        );
    }
}
