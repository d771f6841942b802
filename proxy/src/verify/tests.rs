use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::*;
use crate::keys::testing::{
    claims_at, jwks, provider, KeyServer, KeyServerSource, TestKey, AUDIENCE, ISSUER, NOW,
};

/// A verifier over one provider served by an in-test JWKS server, with a settable clock.
struct Fixture {
    server: KeyServer,
    keys: Arc<KeyStore>,
    verifier: Verifier,
    metrics: Metrics,
    clock: Arc<AtomicI64>,
}

async fn fixture(keys: &[&TestKey]) -> Fixture {
    fixture_with(keys, |_| {}, 100).await
}

async fn fixture_with(
    keys: &[&TestKey],
    adjust: impl FnOnce(&mut ProviderConfig),
    max_entries: usize,
) -> Fixture {
    let server = KeyServer::start(jwks(keys)).await;
    let mut config = provider(server.source());
    config.algorithms.push(Algorithm::PS256);
    adjust(&mut config);
    let metrics = Metrics::new();
    let store = KeyStore::new(std::slice::from_ref(&config), metrics.clone()).expect("store");
    store.refresh_all().await.expect("initial fetch");
    let clock = Arc::new(AtomicI64::new(NOW));
    let reader = Arc::clone(&clock);
    let verifier = Verifier::new(
        Arc::clone(&store),
        &[config],
        &CacheConfig { max_entries },
        metrics.clone(),
    )
    .with_clock(move || reader.load(Ordering::SeqCst));
    Fixture {
        server,
        keys: store,
        verifier,
        metrics,
        clock,
    }
}

fn claims_with(changes: Value) -> Value {
    let mut claims = claims_at(NOW);
    for (name, value) in changes.as_object().expect("object") {
        match value {
            Value::Null if name != "aud" => {
                claims.as_object_mut().expect("object").remove(name);
            }
            _ => claims[name] = value.clone(),
        }
    }
    claims
}

fn without(claim: &str) -> Value {
    let mut claims = claims_at(NOW);
    claims.as_object_mut().expect("object").remove(claim);
    claims
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn verification_count(metrics: &Metrics, result: &str) -> u64 {
    metrics.verifications.with_label_values(&[result]).get()
}

#[tokio::test]
async fn claims_dropped_unless_kept() {
    let key = TestKey::rsa("rsa-1", 0);
    let fx = fixture(&[&key]).await;
    let token = key.sign(&claims_at(NOW));
    let with_text = fx.verifier.verify(&token).await.expect("valid token");
    assert_eq!(with_text.claims().expect("payload kept")["sub"], "peter");

    let fx = fixture(&[&key]).await;
    let verifier = fx.verifier.keep_claims(false);
    let without_text = verifier.verify(&token).await.expect("valid token");
    let claims = without_text.claims();
    assert!(claims.is_none(), "payload kept: {claims:?}");
    assert_eq!(without_text.subject(), Some("peter"));
    assert_eq!(without_text.scopes().collect::<Vec<_>>(), ["foo", "bar"]);
}

#[tokio::test]
async fn valid_tokens_of_each_family() {
    let keys = [
        TestKey::rsa("rsa-1", 0),
        TestKey::ec("ec-1"),
        TestKey::ed25519("ed-1"),
    ];
    let fx = fixture(&[&keys[0], &keys[1], &keys[2]]).await;

    for key in &keys {
        let verified = fx
            .verifier
            .verify(&key.sign(&claims_at(NOW)))
            .await
            .unwrap_or_else(|err| panic!("{:?} token rejected: {err}", key.algorithm));
        assert_eq!(&*verified.issuer, ISSUER);
        assert_eq!(verified.subject(), Some("peter"));
        assert_eq!(verified.client_id(), Some("applicationid"));
        assert_eq!(verified.scopes().collect::<Vec<_>>(), ["foo", "bar"]);
        assert_eq!(verified.expires_at, (NOW + 3600) as u64);
        assert_eq!(
            verified.claims().expect("payload kept")["jti"],
            "6d1f0b8c-2a1e-4c4e-9a55-0c2d1f7e9b10"
        );
    }
    assert_eq!(verification_count(&fx.metrics, "valid"), 3);
}

#[tokio::test]
async fn valid_es384_token() {
    let key = TestKey::ec384("ec384-1");
    let fx = fixture_with(
        &[&key],
        |config| config.algorithms.push(Algorithm::ES384),
        0,
    )
    .await;

    let verified = fx.verifier.verify(&key.sign(&claims_at(NOW))).await;

    assert!(verified.is_ok(), "{verified:?}");
}

#[tokio::test]
async fn unpinned_rsa_key_accepts_ps256() {
    // Without `alg` in the JWK, any allowed RSA algorithm may use the key.
    let mut key = TestKey::rsa("rsa-1", 1);
    key.jwk.as_object_mut().expect("object").remove("alg");
    let fx = fixture(&[&key]).await;
    key.algorithm = Algorithm::PS256;

    let verified = fx.verifier.verify(&key.sign(&claims_at(NOW))).await;

    assert!(verified.is_ok(), "{verified:?}");
}

const RSA_ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

#[tokio::test]
async fn unpinned_rsa_key_verifies_each_rsa_algorithm() {
    let mut key = TestKey::rsa("rsa-1", 1);
    key.jwk.as_object_mut().expect("object").remove("alg");
    let fx = fixture_with(
        &[&key],
        |config| config.algorithms = RSA_ALGORITHMS.to_vec(),
        0,
    )
    .await;

    for algorithm in RSA_ALGORITHMS {
        key.algorithm = algorithm;
        let verified = fx.verifier.verify(&key.sign(&claims_at(NOW))).await;
        assert!(verified.is_ok(), "{algorithm:?}: {verified:?}");
    }
}

#[tokio::test]
async fn rsa_signature_must_match_header_alg() {
    // Every token is signed with RS256 but names another allowed RSA algorithm.
    let mut key = TestKey::rsa("rsa-1", 1);
    key.jwk.as_object_mut().expect("object").remove("alg");
    let fx = fixture_with(
        &[&key],
        |config| config.algorithms = RSA_ALGORITHMS.to_vec(),
        0,
    )
    .await;
    key.algorithm = Algorithm::RS256;
    let payload = claims_at(NOW).to_string();

    for claimed in &RSA_ALGORITHMS[1..] {
        let header = json!({"alg": format!("{claimed:?}"), "typ": "at+jwt", "kid": "rsa-1"});
        let token = key.sign_raw(&header.to_string(), &payload);
        let err = fx.verifier.verify(&token).await.expect_err("wrong hash");
        assert_eq!(err, VerifyError::BadSignature, "{claimed:?}");
    }
}

#[tokio::test]
async fn tampered_payload_fails_signature() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let token = key.sign(&claims_at(NOW));
    let parts: Vec<&str> = token.split('.').collect();
    let forged = claims_with(json!({"sub": "admin"})).to_string();
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);

    let err = fx.verifier.verify(&tampered).await.expect_err("tampered");

    assert_eq!(err, VerifyError::BadSignature);
    assert_eq!(verification_count(&fx.metrics, "bad_signature"), 1);
}

#[tokio::test]
async fn signature_from_other_key_fails() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let impostor = TestKey::ec("ec-1");

    let err = fx.verifier.verify(&impostor.sign(&claims_at(NOW))).await;

    assert_eq!(err.expect_err("wrong key"), VerifyError::BadSignature);
}

#[tokio::test]
async fn expiry_respects_leeway_edge() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;

    // Leeway is 60 s: valid while exp + 60 > now.
    let last_valid = key.sign(&claims_with(
        json!({"exp": NOW - 59, "nbf": NOW - 100, "iat": NOW - 100}),
    ));
    let first_invalid = key.sign(&claims_with(
        json!({"exp": NOW - 60, "nbf": NOW - 100, "iat": NOW - 100}),
    ));

    assert!(fx.verifier.verify(&last_valid).await.is_ok());
    let err = fx
        .verifier
        .verify(&first_invalid)
        .await
        .expect_err("expired");
    assert_eq!(
        err,
        VerifyError::Expired {
            expired_at: NOW - 60
        }
    );
    assert_eq!(err.reason(), "expired");
    assert_eq!(
        err.description(),
        "the token expired at 2027-01-15T07:59:00Z"
    );
}

#[tokio::test]
async fn not_before_respects_leeway_edge() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;

    let last_valid = key.sign(&claims_with(json!({"nbf": NOW + 60})));
    let too_early = key.sign(&claims_with(json!({"nbf": NOW + 61})));

    assert!(fx.verifier.verify(&last_valid).await.is_ok());
    let err = fx
        .verifier
        .verify(&too_early)
        .await
        .expect_err("not yet valid");
    assert_eq!(
        err,
        VerifyError::NotYetValid {
            not_before: NOW + 61
        }
    );
    assert_eq!(err.reason(), "not_yet_valid");
}

#[tokio::test]
async fn time_claims_must_be_numbers() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let cases = [
        (
            claims_with(json!({"exp": (NOW + 3600).to_string()})),
            "exp",
            "is not a number",
        ),
        (without("exp"), "exp", "is missing"),
        (claims_with(json!({"nbf": "0"})), "nbf", "is not a number"),
        (claims_with(json!({"iat": true})), "iat", "is not a number"),
    ];
    for (claims, claim, problem) in cases {
        let err = fx
            .verifier
            .verify(&key.sign(&claims))
            .await
            .expect_err("invalid");
        assert_eq!(
            err,
            VerifyError::InvalidClaim { claim, problem },
            "{claims}"
        );
    }
}

#[tokio::test]
async fn fractional_exp_is_accepted() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let token = key.sign(&claims_with(json!({"exp": (NOW + 100) as f64 + 0.5})));

    let verified = fx.verifier.verify(&token).await.expect("valid");

    assert_eq!(verified.expires_at, (NOW + 100) as u64);
}

#[tokio::test]
async fn audience_shapes_are_checked() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let accepted = [json!(AUDIENCE), json!(["other", AUDIENCE])];
    let rejected = [
        json!("inventory"),
        json!(["inventory"]),
        json!("Orders"),
        json!([]),
        Value::Null,
        json!(5),
        json!([[AUDIENCE]]),
        json!([AUDIENCE, 5]),
        json!({"aud": AUDIENCE}),
        json!(""),
    ];

    for audience in accepted {
        let token = key.sign(&claims_with(json!({ "aud": audience })));
        assert!(
            fx.verifier.verify(&token).await.is_ok(),
            "{audience} rejected"
        );
    }
    for audience in rejected {
        let token = key.sign(&claims_with(json!({ "aud": audience })));
        let err = fx
            .verifier
            .verify(&token)
            .await
            .expect_err("wrong audience");
        assert_eq!(err.reason(), "wrong_audience", "{audience}");
        assert_eq!(err.description(), "the audience does not include orders");
    }
    let err = fx.verifier.verify(&key.sign(&without("aud"))).await;
    assert_eq!(err.expect_err("missing").reason(), "wrong_audience");
}

#[tokio::test]
async fn unknown_issuer_fails_without_fetch() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let fetches_before = fx.server.total_hits();

    for issuer in [
        json!("https://evil.test"),
        json!("https://sts.test/"),
        json!("HTTPS://sts.test"),
    ] {
        let token = key.sign(&claims_with(json!({ "iss": issuer.clone() })));
        let err = fx
            .verifier
            .verify(&token)
            .await
            .expect_err("untrusted issuer");
        assert_eq!(
            err,
            VerifyError::WrongIssuer {
                issuer: issuer.as_str().map(str::to_owned)
            }
        );
    }
    let unknown_kid = TestKey::ec("never-published");
    let token = unknown_kid.sign(&claims_with(json!({"iss": "https://evil.test"})));
    assert_eq!(
        fx.verifier
            .verify(&token)
            .await
            .expect_err("untrusted")
            .reason(),
        "wrong_issuer"
    );
    let err = fx.verifier.verify(&key.sign(&without("iss"))).await;
    assert_eq!(
        err.expect_err("no issuer"),
        VerifyError::WrongIssuer { issuer: None }
    );

    assert_eq!(fx.server.total_hits(), fetches_before);
}

#[tokio::test]
async fn none_and_hmac_are_rejected() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let payload = b64(&claims_at(NOW).to_string());
    let unsigned = format!("{}.{payload}.", b64(r#"{"alg":"none"}"#));
    let unsigned_with_signature = format!("{}.{payload}.{}", b64(r#"{"alg":"none"}"#), b64("x"));

    assert_eq!(
        fx.verifier
            .verify(&unsigned)
            .await
            .expect_err("none")
            .reason(),
        "malformed"
    );
    let err = fx
        .verifier
        .verify(&unsigned_with_signature)
        .await
        .expect_err("none");
    assert_eq!(
        err,
        VerifyError::AlgorithmNotAllowed {
            algorithm: "none".into()
        }
    );

    // An HS256 token keyed with the EC public key's coordinates, the classic confusion attack.
    let hmac_key =
        jsonwebtoken::EncodingKey::from_secret(key.jwk["x"].as_str().expect("x").as_bytes());
    let header = jsonwebtoken::Header {
        kid: Some("ec-1".into()),
        ..jsonwebtoken::Header::new(Algorithm::HS256)
    };
    let hs256 = jsonwebtoken::encode(&header, &claims_at(NOW), &hmac_key).expect("sign");
    let err = fx.verifier.verify(&hs256).await.expect_err("hmac");
    assert_eq!(
        err,
        VerifyError::AlgorithmNotAllowed {
            algorithm: "HS256".into()
        }
    );
}

#[tokio::test]
async fn algorithm_must_be_allowed_and_fit_key() {
    let rsa = TestKey::rsa("rsa-1", 0);
    let ec = TestKey::ec("ec-1");
    let fx = fixture_with(
        &[&rsa, &ec],
        |config| config.algorithms = vec![Algorithm::RS256, Algorithm::ES256],
        0,
    )
    .await;

    // RS384 is a valid RSA algorithm but not in the provider's list.
    let mut rs384 = rsa.clone();
    rs384.algorithm = Algorithm::RS384;
    let err = fx
        .verifier
        .verify(&rs384.sign(&claims_at(NOW)))
        .await
        .expect_err("not allowed");
    assert_eq!(
        err,
        VerifyError::AlgorithmNotAllowed {
            algorithm: "RS384".into()
        }
    );

    // ES256 in the header but the kid names the RSA key.
    let header = r#"{"alg":"ES256","kid":"rsa-1"}"#;
    let token = ec.sign_raw(header, &claims_at(NOW).to_string());
    let err = fx.verifier.verify(&token).await.expect_err("mismatch");
    assert_eq!(
        err,
        VerifyError::AlgorithmMismatch {
            algorithm: "ES256".into(),
            kid: Some("rsa-1".into()),
            family: crate::keys::KeyFamily::Rsa
        }
    );
}

#[tokio::test]
async fn key_pinned_algorithm_is_enforced() {
    // The JWK pins RS256, so a PS256 signature by the same key is rejected.
    let rsa = TestKey::rsa("rsa-1", 0);
    let fx = fixture(&[&rsa]).await;
    let mut ps256 = rsa.clone();
    ps256.algorithm = Algorithm::PS256;

    let err = fx
        .verifier
        .verify(&ps256.sign(&claims_at(NOW)))
        .await
        .expect_err("pinned");

    assert_eq!(err.reason(), "algorithm_mismatch");
}

#[tokio::test]
async fn malformed_tokens_are_rejected() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let token = key.sign(&claims_at(NOW));
    let parts: Vec<&str> = token.split('.').collect();
    let (header, payload, signature) = (parts[0], parts[1], parts[2]);
    let signed_raw = |header: &str, payload: &str| key.sign_raw(header, payload);
    let claims = claims_at(NOW).to_string();

    let cases: Vec<(String, &str)> = vec![
        (format!("{header}.{payload}"), "two segments"),
        (format!("{token}.{signature}"), "four segments"),
        (format!("{header}..{signature}"), "empty payload"),
        (format!(".{payload}.{signature}"), "empty header"),
        (
            format!("{header}.{payload}.{signature}="),
            "signature padding",
        ),
        (format!("{header}=.{payload}.{signature}"), "header padding"),
        (format!("{header}.{payload}./{}", &signature[1..]), "slash"),
        (
            format!("{header}.{payload}.+{}", &signature[1..]),
            "plus sign",
        ),
        (format!("{header}.{payload} .{signature}"), "whitespace"),
        (
            format!("{header}.{payload}.{signature}AAA"),
            "signature length",
        ),
        (signed_raw(r#"["ES256"]"#, &claims), "header array"),
        (
            signed_raw(r#"{"alg":"ES256","kid":"ec-1"}"#, "[1]"),
            "payload array",
        ),
        (
            signed_raw(r#"{"alg":"ES256","kid":"ec-1"}"#, "not json"),
            "payload text",
        ),
        (
            signed_raw(r#"{"alg":"ES256","kid":"ec-1","kid":"ec-1"}"#, &claims),
            "duplicate header",
        ),
        (
            signed_raw(
                r#"{"alg":"ES256","kid":"ec-1"}"#,
                &format!("{{\"sub\":\"admin\",{}", &claims[1..]),
            ),
            "duplicate claim",
        ),
        (
            signed_raw(r#"{"alg":"ES256","kid":7}"#, &claims),
            "kid number",
        ),
        (signed_raw(r#"{"kid":"ec-1"}"#, &claims), "no alg"),
        (
            signed_raw(
                r#"{"alg":"ES256","kid":"ec-1","crit":["exp"],"exp":1}"#,
                &claims,
            ),
            "crit",
        ),
    ];
    for (token, case) in cases {
        let err = fx.verifier.verify(&token).await.expect_err(case);
        assert_eq!(err.reason(), "malformed", "{case}: {err}");
    }
    assert_eq!(
        fx.server.total_hits(),
        1,
        "malformed tokens never cause a fetch"
    );
}

#[tokio::test]
async fn non_canonical_base64_is_rejected() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    // A 22-byte header leaves one byte in the last base64 group, whose final character then
    // carries 4 spare bits. Moving that character one step up the alphabet sets a spare bit
    // and decodes to the same bytes under a lax decoder.
    let header = r#"{"alg":"ES256","x":12}"#;
    assert_eq!(header.len() % 3, 1);
    let token = key.sign_raw(header, &claims_at(NOW).to_string());
    let encoded_header = token.split('.').next().expect("header");
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = encoded_header.chars().last().expect("last character");
    let bumped = alphabet
        .chars()
        .nth(alphabet.find(last).expect("in alphabet") + 1)
        .expect("next");
    let variant = format!(
        "{}{bumped}{}",
        &encoded_header[..encoded_header.len() - 1],
        &token[encoded_header.len()..]
    );

    let err = fx
        .verifier
        .verify(&variant)
        .await
        .expect_err("non-canonical");

    assert_eq!(err.reason(), "malformed", "{err}");
    assert!(
        fx.verifier.verify(&token).await.is_ok(),
        "the canonical spelling verifies"
    );
}

#[tokio::test]
async fn embedded_keys_in_header_are_ignored() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let attacker = TestKey::ec("ec-1");
    let header = json!({
        "alg": "ES256",
        "kid": "ec-1",
        "jwk": attacker.jwk,
        "jku": "http://127.0.0.1:9/jwks.json",
        "x5u": "http://127.0.0.1:9/cert.pem",
        "x5c": ["MIIB"],
    })
    .to_string();

    let err = fx
        .verifier
        .verify(&attacker.sign_raw(&header, &claims_at(NOW).to_string()))
        .await;

    assert_eq!(err.expect_err("attacker key"), VerifyError::BadSignature);
    assert_eq!(fx.server.total_hits(), 1);
}

#[tokio::test]
async fn token_without_kid_needs_single_key() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let token = key.sign_raw(r#"{"alg":"ES256"}"#, &claims_at(NOW).to_string());
    assert!(fx.verifier.verify(&token).await.is_ok());

    let second = TestKey::ed25519("ed-1");
    fx.server.set_jwks(jwks(&[&key, &second]));
    fx.keys.refresh_all().await.expect("refresh");
    let err = fx.verifier.verify(&token).await.expect_err("ambiguous");
    assert_eq!(err, VerifyError::KidRequired { keys: 2 });
    assert_eq!(err.reason(), "unknown_key");
}

#[tokio::test]
async fn rotated_key_accepted_after_refetch() {
    let old = TestKey::ec("old");
    let fx = fixture(&[&old]).await;
    let new = TestKey::ed25519("new");
    fx.server.set_jwks(jwks(&[&old, &new]));

    let verified = fx.verifier.verify(&new.sign(&claims_at(NOW))).await;

    assert!(verified.is_ok(), "{verified:?}");
    assert_eq!(fx.server.total_hits(), 2);
}

#[tokio::test]
async fn unknown_kid_is_reported() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let stranger = TestKey::ec("stranger\"kid");

    let err = fx
        .verifier
        .verify(&stranger.sign(&claims_at(NOW)))
        .await
        .expect_err("unknown");

    assert_eq!(
        err,
        VerifyError::UnknownKey {
            kid: "stranger\"kid".into()
        }
    );
    assert_eq!(
        err.description(),
        "the issuer has no signing key with kid 'stranger?kid'"
    );
}

#[tokio::test]
async fn keys_unavailable_before_first_fetch() {
    let key = TestKey::ec("ec-1");
    let server = KeyServer::start(jwks(&[&key])).await;
    let config = provider(server.source());
    let metrics = Metrics::new();
    let store = KeyStore::new(std::slice::from_ref(&config), metrics.clone()).expect("store");
    let verifier = Verifier::new(store, &[config], &CacheConfig { max_entries: 10 }, metrics);

    let err = verifier.verify(&key.sign(&claims_at(NOW))).await;

    assert_eq!(
        err.expect_err("no keys"),
        VerifyError::KeysUnavailable {
            issuer: ISSUER.into()
        }
    );
}

#[tokio::test]
async fn scopes_from_scope_or_scp() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let cases = [
        (claims_with(json!({"scope": "a  b"})), vec!["a", "b"]),
        (claims_with(json!({"scope": ["a", "b"]})), vec!["a", "b"]),
        (claims_with(json!({"scope": null, "scp": ["c"]})), vec!["c"]),
        (
            claims_with(json!({"scope": null, "scp": "c d"})),
            vec!["c", "d"],
        ),
        (claims_with(json!({"scope": null})), vec![]),
    ];
    for (claims, expected) in cases {
        let verified = fx.verifier.verify(&key.sign(&claims)).await.expect("valid");
        assert_eq!(verified.scopes().collect::<Vec<_>>(), expected, "{claims}");
    }
    let err = fx
        .verifier
        .verify(&key.sign(&claims_with(json!({"scope": 3}))))
        .await;
    assert_eq!(err.expect_err("bad scope").reason(), "invalid_claim");
}

#[tokio::test]
async fn identity_claims_must_be_strings() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    for claim in ["sub", "client_id"] {
        let err = fx
            .verifier
            .verify(&key.sign(&claims_with(json!({ claim: 42 }))))
            .await;
        assert_eq!(
            err.expect_err("number").reason(),
            "invalid_claim",
            "{claim}"
        );
    }
}

#[tokio::test]
async fn cache_hit_is_counted() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let token = key.sign(&claims_at(NOW));

    let first = fx.verifier.verify(&token).await.expect("valid");
    let second = fx.verifier.verify(&token).await.expect("valid");

    assert!(
        Arc::ptr_eq(&first, &second),
        "the second result comes from the cache"
    );
    assert_eq!(fx.metrics.cache_misses.get(), 1);
    assert_eq!(fx.metrics.cache_hits.get(), 1);
    assert_eq!(verification_count(&fx.metrics, "valid"), 2);
}

/// Returns `token` with its signature replaced by the one of `other`.
fn with_signature_of(token: &str, other: &str) -> String {
    let (signing_input, _) = token.rsplit_once('.').unwrap();
    let (_, signature) = other.rsplit_once('.').unwrap();
    format!("{signing_input}.{signature}")
}

#[tokio::test]
async fn cached_claims_with_other_signature_rejected() {
    // RS256 and ES256 reuse the cache key's digest for the signature check, and EdDSA signs
    // the text itself.
    let keys = [
        TestKey::rsa("rsa-1", 0),
        TestKey::ec("ec-1"),
        TestKey::ed25519("ed-1"),
    ];
    for key in &keys {
        let fx = fixture(&[key]).await;
        let claims = claims_at(NOW);
        let token = key.sign(&claims);
        fx.verifier.verify(&token).await.expect("valid");

        // The signature of other claims, on the cached token's header and payload.
        let other = key.sign(&claims_with(json!({"sub": "someone-else"})));
        let forged = with_signature_of(&token, &other);
        let err = fx.verifier.verify(&forged).await.expect_err("forged");
        assert_eq!(err.reason(), "bad_signature", "{}", key.kid);
        // A truncated signature is rejected too.
        let truncated = &token[..token.len() - 4];
        fx.verifier.verify(truncated).await.expect_err("truncated");

        let again = fx.verifier.verify(&token).await.expect("still valid");
        assert_eq!(again.subject(), Some("peter"), "{}", key.kid);
        assert_eq!(fx.metrics.cache_hits.get(), 1, "{}", key.kid);
        assert_eq!(fx.metrics.cache_misses.get(), 3, "{}", key.kid);
    }
}

#[tokio::test]
async fn second_signature_of_cached_claims_verified() {
    // ECDSA signatures are randomized: signing the same claims twice gives two valid tokens
    // with the same signing input.
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let claims = claims_at(NOW);
    let first = key.sign(&claims);
    let second = key.sign(&claims);
    assert_ne!(first, second);
    assert_eq!(
        first.rsplit_once('.').unwrap().0,
        second.rsplit_once('.').unwrap().0
    );

    for token in [&first, &second, &first] {
        fx.verifier.verify(token).await.expect("valid");
    }
    assert_eq!(
        fx.metrics.cache_misses.get(),
        3,
        "each signature is checked"
    );
    assert_eq!(verification_count(&fx.metrics, "valid"), 3);
}

#[tokio::test]
async fn cached_token_expires_on_time() {
    let key = TestKey::ec("ec-1");
    let fx = fixture(&[&key]).await;
    let token = key.sign(&claims_with(json!({"exp": NOW + 10})));
    fx.verifier.verify(&token).await.expect("valid");

    fx.clock.store(NOW + 69, Ordering::SeqCst);
    assert!(
        fx.verifier.verify(&token).await.is_ok(),
        "within exp + leeway"
    );
    assert_eq!(fx.metrics.cache_hits.get(), 1);

    fx.clock.store(NOW + 70, Ordering::SeqCst);
    let err = fx.verifier.verify(&token).await.expect_err("expired");
    assert_eq!(err.reason(), "expired");
    assert_eq!(
        fx.metrics.cache_hits.get(),
        1,
        "an expired entry is not a hit"
    );
}

#[tokio::test]
async fn cache_drops_token_of_removed_key() {
    let old = TestKey::ec("old");
    let new = TestKey::ec("new");
    let fx = fixture(&[&old, &new]).await;
    let old_token = old.sign(&claims_at(NOW));
    let new_token = new.sign(&claims_at(NOW));
    fx.verifier.verify(&old_token).await.expect("valid");
    fx.verifier.verify(&new_token).await.expect("valid");

    fx.server.set_jwks(jwks(&[&new]));
    fx.keys.refresh_all().await.expect("refresh");

    let err = fx
        .verifier
        .verify(&old_token)
        .await
        .expect_err("key removed");
    assert_eq!(err, VerifyError::UnknownKey { kid: "old".into() });
    assert!(fx.verifier.verify(&new_token).await.is_ok());
    assert_eq!(
        fx.metrics.cache_hits.get(),
        1,
        "only the token of the kept key is a hit"
    );
}

#[tokio::test]
async fn full_cache_skips_insert() {
    let key = TestKey::ec("ec-1");
    let fx = fixture_with(&[&key], |_| {}, 2).await;
    let tokens: Vec<String> = (0..3)
        .map(|n| key.sign(&claims_with(json!({"jti": n, "exp": NOW + 100 + n}))))
        .collect();
    for token in &tokens {
        fx.verifier.verify(token).await.expect("valid");
    }
    let cache = fx.verifier.cache.as_ref().expect("cache on");
    assert_eq!(cache.len(), 2);

    fx.verifier.verify(&tokens[2]).await.expect("valid");
    assert_eq!(
        fx.metrics.cache_hits.get(),
        0,
        "the third token was not cached"
    );

    // Once the first token expires, a sweep frees its slot.
    fx.clock.store(NOW + 100 + 60, Ordering::SeqCst);
    fx.verifier.verify(&tokens[2]).await.expect("valid");
    fx.verifier.verify(&tokens[2]).await.expect("valid");
    assert_eq!(fx.metrics.cache_hits.get(), 1);
    assert_eq!(cache.counted(), cache.len());

    // A stale entry found by a lookup is removed and no longer counted.
    fx.clock.store(NOW + 100 + 1 + 60, Ordering::SeqCst);
    fx.verifier.verify(&tokens[1]).await.expect_err("expired");
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.counted(), 1);
}

#[tokio::test]
async fn disabled_cache_verifies_every_time() {
    let key = TestKey::ec("ec-1");
    let fx = fixture_with(&[&key], |_| {}, 0).await;
    let token = key.sign(&claims_at(NOW));

    fx.verifier.verify(&token).await.expect("valid");
    fx.verifier.verify(&token).await.expect("valid");

    assert!(fx.verifier.cache.is_none());
    assert_eq!(fx.metrics.cache_hits.get(), 0);
    assert_eq!(fx.metrics.cache_misses.get(), 0);
}

#[test]
fn utc_formatting() {
    assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_utc(NOW), "2027-01-15T08:00:00Z");
    assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(format_utc(1_796_378_400), "2026-12-04T10:00:00Z");
    assert_eq!(format_utc(-1), "1969-12-31T23:59:59Z");
}

#[test]
fn description_hides_unsafe_characters() {
    let err = VerifyError::WrongIssuer {
        issuer: Some(format!("a\"b\\c\n{}", "x".repeat(100))),
    };
    let description = err.description();
    assert!(
        description.starts_with("the issuer 'a?b?c?xxx"),
        "{description}"
    );
    assert!(
        description.ends_with("...' is not trusted"),
        "{description}"
    );
    assert!(description.len() < 120, "{description}");
}

#[test]
fn identity_text_keeps_each_part() {
    let both = IdentityText::new(Some("peter"), Some("app"), ["foo", "a b"].into_iter());
    assert_eq!(both.subject(), Some("peter"));
    assert_eq!(both.client_id(), Some("app"));
    assert_eq!(both.scopes().collect::<Vec<_>>(), ["foo", "a b"]);

    let client_only = IdentityText::new(None, Some("app"), std::iter::empty());
    assert_eq!(client_only.subject(), None);
    assert_eq!(client_only.client_id(), Some("app"));
    assert_eq!(client_only.scopes().count(), 0);

    let scopes_only = IdentityText::new(None, None, ["x"].into_iter());
    assert_eq!(scopes_only.subject(), None);
    assert_eq!(scopes_only.client_id(), None);
    assert_eq!(scopes_only.scopes().collect::<Vec<_>>(), ["x"]);

    let empty_subject = IdentityText::new(Some(""), None, ["x"].into_iter());
    assert_eq!(empty_subject.subject(), Some(""));
    assert_eq!(empty_subject.scopes().collect::<Vec<_>>(), ["x"]);
}

#[test]
fn identity_text_drops_empty_and_nul_scopes() {
    let text = IdentityText::new(Some("s"), None, ["", "a", "b\0c", "d"].into_iter());
    assert_eq!(text.scopes().collect::<Vec<_>>(), ["a", "d"]);
    assert_eq!(text.subject(), Some("s"));
}
