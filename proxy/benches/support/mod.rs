//! Helpers shared by the benchmarks: signed tokens and JWKS from the load-test tools, and a
//! sidecar configuration parsed from TOML, so the benchmarks use only the public API.

#![allow(dead_code)] // Each benchmark binary uses a different part.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures_util::FutureExt;
use portcullis::config::Config;
use portcullis::keys::KeyStore;
use portcullis::metrics::Metrics;
use portcullis::verify::Verifier;
use portcullis_loadtest::keys::{jwks_document, SigningAlgorithm, SigningKey};
use portcullis_loadtest::tokens::{sign_batch, TokenSpec, Validity};

pub const ISSUER: &str = "https://issuer.bench";
pub const AUDIENCE: &str = "orders";

/// Returns the current time in seconds since the Unix epoch.
pub fn now() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(elapsed.as_secs()).unwrap()
}

/// Signs `count` distinct valid tokens with `key` for [`ISSUER`] and [`AUDIENCE`].
pub fn tokens(key: &SigningKey, count: usize) -> Vec<String> {
    let spec = TokenSpec {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        client_id: "applicationid".into(),
        scope: "foo bar".into(),
        lifetime_secs: 3600,
        now: now(),
        typ: "at+jwt".into(),
        run_id: "bench".into(),
    };
    sign_batch(key, &spec, Validity::Valid, 0, count).unwrap()
}

/// Generates `count` keys of `algorithm`, with `kid`s `key-0`, `key-1`, ...
pub fn keys(algorithm: SigningAlgorithm, count: usize) -> Vec<SigningKey> {
    (0..count)
        .map(|index| SigningKey::generate(algorithm, &format!("key-{index}")).unwrap())
        .collect()
}

/// Writes the JWKS of `keys` into `folder` and returns a configuration whose one provider
/// reads it, allows `algorithms`, and keeps `cache_entries` verified tokens. `extra` is
/// appended to the TOML, for routes.
pub fn config(
    folder: &Path,
    keys: &[SigningKey],
    algorithms: &[&str],
    cache_entries: usize,
    extra: &str,
) -> Config {
    let jwks = jwks_document(&keys.iter().collect::<Vec<_>>());
    std::fs::write(folder.join("jwks.json"), jwks.to_string()).unwrap();
    let algorithms = algorithms
        .iter()
        .map(|name| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        r#"
[inbound]
listen = "127.0.0.1:0"
upstream = "http://127.0.0.1:8081"

[[providers]]
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
jwks_file = "jwks.json"
algorithms = [{algorithms}]

[cache]
max_entries = {cache_entries}
{extra}"#
    );
    Config::from_toml(&text, folder).unwrap()
}

/// Runs a future that never waits, such as a verification whose keys are loaded, without the
/// cost of an executor. Panics if it would wait.
pub fn complete<F: Future>(future: F) -> F::Output {
    future
        .now_or_never()
        .expect("the future waited; load the keys first")
}

/// Builds the verifier the sidecar runs for `config`, with the providers' keys loaded.
pub fn verifier(config: &Config) -> Verifier {
    let metrics = Metrics::new();
    let keys = KeyStore::new(&config.providers, metrics.clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(keys.refresh_all()).unwrap();
    Verifier::for_config(config, Arc::clone(&keys), metrics)
}

/// Returns the aws-lc-rs parameters the sidecar uses for `algorithm`.
pub fn parameters(algorithm: SigningAlgorithm) -> &'static dyn VerificationAlgorithm {
    match algorithm {
        SigningAlgorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        SigningAlgorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        SigningAlgorithm::EdDsa => &signature::ED25519,
    }
}

/// Parses the public half of `key` from its SPKI PEM, independently of the sidecar's JWK code.
pub fn parsed_public_key(key: &SigningKey, algorithm: SigningAlgorithm) -> ParsedPublicKey {
    let spki = rustls_pemfile::public_keys(&mut key.public_pem().as_bytes())
        .next()
        .unwrap()
        .unwrap();
    ParsedPublicKey::new(parameters(algorithm), spki.as_ref()).unwrap()
}

/// Splits each token into the signing input and the decoded signature, the two arguments of
/// a bare signature check.
pub fn signed_parts(tokens: &[String]) -> Vec<(&str, Vec<u8>)> {
    tokens
        .iter()
        .map(|token| {
            let (signing_input, signature) = token.rsplit_once('.').unwrap();
            (signing_input, URL_SAFE_NO_PAD.decode(signature).unwrap())
        })
        .collect()
}
