//! Fuzzes token parsing and verification: a real verifier over a JWKS file, as the sidecar
//! runs it, with the verified-token cache on.
//!
//! The first input byte picks the mode, so the fuzzer reaches both the parser and the claim
//! checks behind a valid signature:
//! - 0: the rest of the input is the token, as it would arrive in a header;
//! - 1: the rest is a payload, signed under a header with the published `kid`;
//! - 2: the rest is a payload, signed under a header without `kid`;
//! - 3: the rest is `header JSON`, a 0x00 byte, then `payload JSON`, signed as given.
//!
//! libFuzzer reports a panic as a crash and an input slower than `-timeout` as a hang; both
//! are bugs, because a malformed token must never crash or stall a worker.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

use portcullis::config::Config;
use portcullis::keys::KeyStore;
use portcullis::metrics::Metrics;
use portcullis::verify::{parse_token, Verifier};

const ISSUER: &str = "https://sts.test";
const KID: &str = "fuzz-1";

struct Harness {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    signing_key: EncodingKey,
}

/// Builds the verifier once per process. The EC key is fixed, so a crash reproduces from
/// its input alone.
fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let secret =
            p256::SecretKey::from_slice(&[7; 32]).expect("7 repeated is a valid P-256 scalar");
        let point = secret.public_key().to_encoded_point(false);
        let jwks = serde_json::json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "kid": KID, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed point")),
            "y": URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed point")),
        }]});
        let dir = std::env::temp_dir().join(format!("portcullis-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary folder");
        std::fs::write(dir.join("jwks.json"), jwks.to_string()).expect("write JWKS");

        let config = Config::from_toml(
            &format!(
                r#"
                [inbound]
                upstream = "http://127.0.0.1:8081"
                [[providers]]
                issuer = "{ISSUER}"
                audiences = ["orders"]
                jwks_file = "jwks.json"
                max_token_lifetime_secs = 3600
                [cache]
                max_entries = 64
                "#
            ),
            &dir,
        )
        .expect("valid fuzz config");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let metrics = Metrics::new();
        let keys = KeyStore::new(&config.providers, metrics.clone()).expect("key store");
        runtime
            .block_on(keys.refresh_all())
            .expect("JWKS file loads");
        let verifier = Verifier::new(keys, &config.providers, &config.cache, metrics);

        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 encoding");
        let signing_key = EncodingKey::from_ec_pem(pem.as_bytes()).expect("EC PEM");
        Harness {
            runtime,
            verifier,
            signing_key,
        }
    })
}

fn sign(harness: &Harness, header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &harness.signing_key, Algorithm::ES256)
            .expect("ES256 signing");
    format!("{input}.{signature}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let harness = harness();
    let token = match mode % 4 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => sign(
            harness,
            format!(r#"{{"alg":"ES256","kid":"{KID}"}}"#).as_bytes(),
            rest,
        ),
        2 => sign(harness, br#"{"alg":"ES256"}"#, rest),
        _ => {
            let mut parts = rest.splitn(2, |byte| *byte == 0);
            let header = parts.next().unwrap_or_default();
            let payload = parts.next().unwrap_or_default();
            sign(harness, header, payload)
        }
    };
    let _ = parse_token(&token);
    let _ = harness.runtime.block_on(harness.verifier.verify(&token));
});
