use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::testing::{jwks, provider, KeyServer, KeyServerSource, TestKey, ISSUER};
use super::*;
use crate::config::JwksSource;

fn store(provider: ProviderConfig) -> (Arc<KeyStore>, Metrics) {
    let metrics = Metrics::new();
    let store = KeyStore::new(&[provider], metrics.clone()).expect("key store");
    (store, metrics)
}

fn fetches(metrics: &Metrics, result: &str) -> u64 {
    metrics
        .jwks_fetches
        .with_label_values(&[ISSUER, result])
        .get()
}

fn kids(store: &KeyStore) -> Vec<String> {
    let id = store.provider(ISSUER).expect("provider");
    let loaded = store.current(id).expect("keys loaded");
    let mut kids: Vec<String> = ["rsa-1", "rsa-2", "ec-1", "ed-1", "new", "old"]
        .iter()
        .filter(|kid| !loaded.set.by_kid(kid).is_empty())
        .map(|kid| kid.to_string())
        .collect();
    kids.sort();
    kids
}

#[tokio::test]
async fn store_loads_every_key_family() {
    let keys = [
        TestKey::rsa("rsa-1", 0),
        TestKey::ec("ec-1"),
        TestKey::ed25519("ed-1"),
    ];
    let server = KeyServer::start(jwks(&[&keys[0], &keys[1], &keys[2]])).await;
    let (store, metrics) = store(provider(server.source()));

    assert!(!store.is_ready());
    store.refresh_all().await.expect("fetch");

    assert!(store.is_ready());
    assert_eq!(kids(&store), ["ec-1", "ed-1", "rsa-1"]);
    let id = store.provider(ISSUER).expect("provider");
    let loaded = store.current(id).expect("loaded");
    assert_eq!(loaded.set.by_kid("rsa-1")[0].family, KeyFamily::Rsa);
    assert_eq!(loaded.set.by_kid("ec-1")[0].family, KeyFamily::EcP256);
    assert_eq!(loaded.set.by_kid("ed-1")[0].family, KeyFamily::Ed25519);
    assert_eq!(metrics.keys_loaded.with_label_values(&[ISSUER]).get(), 3);
    assert_eq!(fetches(&metrics, "ok"), 1);
    assert_eq!(server.total_hits(), 1);
}

#[tokio::test]
async fn store_reads_jwks_file() {
    let key = TestKey::ec("ec-1");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&key]).to_string()).expect("write");
    let (store, _) = store(provider(JwksSource::File(path)));

    store.refresh_all().await.expect("fetch");

    assert_eq!(kids(&store), ["ec-1"]);
}

#[tokio::test]
async fn missing_file_fails_fetch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, metrics) = store(provider(JwksSource::File(dir.path().join("absent.json"))));

    let err = store.refresh_all().await.expect_err("no file");

    assert!(matches!(err.problem, FetchProblem::File(_)), "{err}");
    assert!(err.to_string().contains("absent.json"), "{err}");
    assert!(!store.is_ready());
    assert_eq!(fetches(&metrics, "error"), 1);
}

#[tokio::test]
async fn unusable_jwk_is_skipped_alone() {
    let good = TestKey::ec("ec-1");
    let symmetric = json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
    let server = KeyServer::start(json!({"keys": [symmetric, good.jwk]})).await;
    let (store, _) = store(provider(server.source()));

    store.refresh_all().await.expect("fetch");

    assert_eq!(kids(&store), ["ec-1"]);
    let id = store.provider(ISSUER).expect("provider");
    assert_eq!(store.current(id).expect("loaded").set.len(), 1);
}

#[tokio::test]
async fn set_without_usable_key_keeps_store_unready() {
    let symmetric = json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"});
    let server = KeyServer::start(json!({"keys": [symmetric]})).await;
    let (store, metrics) = store(provider(server.source()));

    let err = store.refresh_all().await.expect_err("no usable key");

    assert!(
        matches!(err.problem, FetchProblem::NoUsableKeys { skipped: 1 }),
        "{err}"
    );
    assert!(!store.is_ready());
    assert_eq!(fetches(&metrics, "error"), 1);
}

#[tokio::test]
async fn failed_refresh_keeps_last_good_set() {
    let key = TestKey::ec("ec-1");
    let server = KeyServer::start(jwks(&[&key])).await;
    let (store, _) = store(provider(server.source()));
    store.refresh_all().await.expect("first fetch");

    server.fail_next(1);
    let err = store.refresh_all().await.expect_err("server error");
    assert!(
        matches!(
            err.problem,
            FetchProblem::Status(StatusCode::INTERNAL_SERVER_ERROR)
        ),
        "{err}"
    );
    assert_eq!(kids(&store), ["ec-1"]);

    server.set_jwks(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}));
    store.refresh_all().await.expect_err("no usable key");
    assert_eq!(kids(&store), ["ec-1"]);

    server.set_raw_jwks("not json".to_owned());
    let err = store.refresh_all().await.expect_err("invalid document");
    assert!(
        matches!(err.problem, FetchProblem::InvalidDocument(_)),
        "{err}"
    );
    assert_eq!(kids(&store), ["ec-1"]);
}

#[tokio::test]
async fn refresh_drops_removed_key() {
    let old = TestKey::ec("old");
    let new = TestKey::ec("new");
    let server = KeyServer::start(jwks(&[&old, &new])).await;
    let (store, _) = store(provider(server.source()));
    store.refresh_all().await.expect("first fetch");
    let id = store.provider(ISSUER).expect("provider");
    let first_generation = store.current(id).expect("loaded").generation;

    server.set_jwks(jwks(&[&new]));
    store.refresh_all().await.expect("second fetch");

    assert_eq!(kids(&store), ["new"]);
    assert_ne!(
        store.current(id).expect("loaded").generation,
        first_generation
    );
}

#[tokio::test]
async fn unchanged_refresh_keeps_generation() {
    let key = TestKey::ec("ec-1");
    let server = KeyServer::start(jwks(&[&key])).await;
    let (store, _) = store(provider(server.source()));
    store.refresh_all().await.expect("first fetch");
    let id = store.provider(ISSUER).expect("provider");
    let generation = store.current(id).expect("loaded").generation;

    store.refresh_all().await.expect("second fetch");

    assert_eq!(store.current(id).expect("loaded").generation, generation);
}

#[tokio::test]
async fn oversized_document_is_rejected() {
    let server = KeyServer::start(json!({})).await;
    server.set_raw_jwks(" ".repeat(MAX_JWKS_BYTES + 1));
    let (store, _) = store(provider(server.source()));

    let err = store.refresh_all().await.expect_err("too large");

    assert!(matches!(err.problem, FetchProblem::TooLarge), "{err}");
}

#[tokio::test]
async fn stalled_fetch_times_out() {
    let server = KeyServer::start(jwks(&[&TestKey::ec("ec-1")])).await;
    server.hold();
    let mut config = provider(server.source());
    config.fetch_timeout = Duration::from_millis(100);
    let (store, _) = store(config);

    let err = store.refresh_all().await.expect_err("stalled");

    assert!(matches!(err.problem, FetchProblem::TimedOut(_)), "{err}");
    server.release();
}

#[tokio::test]
async fn background_task_retries_until_ready() {
    let server = KeyServer::start(jwks(&[&TestKey::ec("ec-1")])).await;
    server.fail_next(2);
    let (store, metrics) = store(provider(server.source()));

    let task = store.spawn();
    server.wait_for_jwks_hits(3).await;
    for _ in 0..500 {
        if store.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();

    assert!(store.is_ready());
    assert_eq!(fetches(&metrics, "error"), 2);
    assert_eq!(fetches(&metrics, "ok"), 1);
}

#[tokio::test]
async fn background_task_refreshes_on_interval() {
    let server = KeyServer::start(jwks(&[&TestKey::ec("old")])).await;
    let mut config = provider(server.source());
    config.refresh_interval = Duration::from_millis(50);
    let (store, _) = store(config);

    let task = store.spawn();
    server.wait_for_jwks_hits(1).await;
    server.set_jwks(jwks(&[&TestKey::ec("new")]));
    server.wait_for_jwks_hits(3).await;
    task.abort();

    assert_eq!(kids(&store), ["new"]);
}

#[tokio::test]
async fn unknown_kid_fetch_is_shared() {
    let old = TestKey::ec("old");
    let server = KeyServer::start(jwks(&[&old])).await;
    let (store, metrics) = store(provider(server.source()));
    store.refresh_all().await.expect("first fetch");
    let id = store.provider(ISSUER).expect("provider");

    server.set_jwks(jwks(&[&old, &TestKey::ec("new")]));
    server.hold();
    let lookups: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.find_key(id, Some("new")).await })
        })
        .collect();
    server.wait_for_jwks_hits(2).await;
    server.release();

    for lookup in lookups {
        let found = lookup
            .await
            .expect("task")
            .expect("key found after the refetch");
        assert_eq!(found.candidates[0].kid.as_deref(), Some("new"));
    }
    assert_eq!(server.total_hits(), 2);
    assert_eq!(fetches(&metrics, "ok"), 2);
}

#[tokio::test]
async fn unknown_kid_within_cooldown_fails_at_once() {
    let server = KeyServer::start(jwks(&[&TestKey::ec("old")])).await;
    let (store, _) = store(provider(server.source()));
    store.refresh_all().await.expect("first fetch");
    let id = store.provider(ISSUER).expect("provider");

    let first = store.find_key(id, Some("missing-1")).await;
    let second = store.find_key(id, Some("missing-2")).await;

    assert_eq!(
        first.expect_err("unknown"),
        KeyLookupError::UnknownKid("missing-1".into())
    );
    assert_eq!(
        second.expect_err("unknown"),
        KeyLookupError::UnknownKid("missing-2".into())
    );
    assert_eq!(server.total_hits(), 2, "one initial fetch and one refetch");
}

#[tokio::test]
async fn unknown_kid_refetches_after_cooldown() {
    let server = KeyServer::start(jwks(&[&TestKey::ec("old")])).await;
    let mut config = provider(server.source());
    config.unknown_kid_cooldown = Duration::ZERO;
    let (store, _) = store(config);
    store.refresh_all().await.expect("first fetch");
    let id = store.provider(ISSUER).expect("provider");

    store
        .find_key(id, Some("missing-1"))
        .await
        .expect_err("unknown");
    store
        .find_key(id, Some("missing-2"))
        .await
        .expect_err("unknown");

    assert_eq!(server.total_hits(), 3);
}

#[tokio::test]
async fn missing_kid_needs_single_key() {
    let server = KeyServer::start(jwks(&[&TestKey::ec("ec-1")])).await;
    let (store, _) = store(provider(server.source()));
    store.refresh_all().await.expect("fetch");
    let id = store.provider(ISSUER).expect("provider");

    assert!(store.find_key(id, None).await.is_ok());

    server.set_jwks(jwks(&[&TestKey::ec("ec-1"), &TestKey::ec("ec-2")]));
    store.refresh_all().await.expect("fetch");
    assert_eq!(
        store.find_key(id, None).await.expect_err("ambiguous"),
        KeyLookupError::KidRequired(2)
    );
    assert_eq!(
        server.total_hits(),
        2,
        "a missing kid never triggers a fetch"
    );
}

#[tokio::test]
async fn lookup_before_first_fetch_fails() {
    let server = KeyServer::start(jwks(&[&TestKey::ec("ec-1")])).await;
    let (store, _) = store(provider(server.source()));
    let id = store.provider(ISSUER).expect("provider");

    assert_eq!(
        store
            .find_key(id, Some("ec-1"))
            .await
            .expect_err("not loaded"),
        KeyLookupError::NotLoaded
    );
    assert_eq!(server.total_hits(), 0);
}

fn parse_one(jwk: Value, allowed: &[Algorithm]) -> Result<(), SkipReason> {
    let parsed = parse_jwks(json!({ "keys": [jwk] }).to_string().as_bytes(), allowed)
        .expect("valid document");
    match parsed.skipped.first() {
        Some(skipped) => Err(skipped.reason.clone()),
        None => Ok(()),
    }
}

#[test]
fn jwk_skip_reasons() {
    let all = [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    let ec = TestKey::ec("ec-1").jwk;
    let with = |changes: Value| {
        let mut jwk = ec.clone();
        for (name, value) in changes.as_object().expect("object") {
            if value.is_null() {
                jwk.as_object_mut().expect("object").remove(name);
            } else {
                jwk[name] = value.clone();
            }
        }
        jwk
    };
    let x = ec["x"].as_str().expect("x").to_owned();

    let cases: Vec<(Value, SkipReason)> = vec![
        (json!("not an object"), SkipReason::NotAnObject),
        (with(json!({"kid": 7})), SkipReason::FieldNotString("kid")),
        (
            with(json!({"use": "enc"})),
            SkipReason::NotForSignatures("enc".into()),
        ),
        (
            with(json!({"key_ops": ["encrypt"]})),
            SkipReason::NoVerifyOperation,
        ),
        (
            with(json!({"kty": "oct"})),
            SkipReason::UnsupportedKeyType("oct".into()),
        ),
        (with(json!({"kty": null})), SkipReason::MissingField("kty")),
        (
            with(json!({"alg": "ES512"})),
            SkipReason::UnknownAlgorithm("ES512".into()),
        ),
        (
            with(json!({"alg": "HS256"})),
            SkipReason::UnknownAlgorithm("HS256".into()),
        ),
        (
            with(json!({"alg": "RS256"})),
            SkipReason::AlgorithmDoesNotFit {
                algorithm: "RS256".into(),
                family: KeyFamily::EcP256,
            },
        ),
        (
            with(json!({"crv": "P-521"})),
            SkipReason::UnsupportedCurve("P-521".into()),
        ),
        (
            with(json!({"crv": "P-384"})),
            SkipReason::WrongLength {
                field: "x",
                expected: 48,
                found: 32,
            },
        ),
        (
            with(json!({"x": format!("{x}=")})),
            SkipReason::InvalidBase64("x"),
        ),
        (
            with(json!({"x": format!("+{}", &x[1..])})),
            SkipReason::InvalidBase64("x"),
        ),
        (
            with(json!({"x": format!("/{}", &x[1..])})),
            SkipReason::InvalidBase64("x"),
        ),
        (
            with(json!({"x": format!(" {x}")})),
            SkipReason::InvalidBase64("x"),
        ),
        (with(json!({"y": null})), SkipReason::MissingField("y")),
        (
            json!({"kty": "OKP", "crv": "Ed448", "x": x}),
            SkipReason::UnsupportedCurve("Ed448".into()),
        ),
        (
            json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
            SkipReason::WrongLength {
                field: "x",
                expected: 32,
                found: 3,
            },
        ),
    ];
    for (jwk, expected) in cases {
        assert_eq!(parse_one(jwk.clone(), &all), Err(expected), "{jwk}");
    }
}

#[test]
fn jwk_base64_with_spare_bits_is_rejected() {
    // "AB" decodes to one byte with non-zero unused bits; only "AA".."AP" style spellings
    // with zero trailing bits are canonical.
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": format!("{}AB", "A".repeat(40))});
    assert_eq!(
        parse_one(jwk, &[Algorithm::EdDSA]),
        Err(SkipReason::InvalidBase64("x"))
    );
}

#[test]
fn jwk_algorithm_must_be_allowed() {
    let ec = TestKey::ec("ec-1").jwk;
    assert_eq!(
        parse_one(ec.clone(), &[Algorithm::RS256]),
        Err(SkipReason::AlgorithmNotAllowed("ES256".into()))
    );
    let mut without_alg = ec;
    without_alg.as_object_mut().expect("object").remove("alg");
    assert_eq!(
        parse_one(without_alg.clone(), &[Algorithm::RS256]),
        Err(SkipReason::NoAllowedAlgorithm(KeyFamily::EcP256))
    );
    assert_eq!(parse_one(without_alg, &[Algorithm::ES256]), Ok(()));
}

#[test]
fn short_rsa_modulus_is_rejected() {
    let rsa = TestKey::rsa("rsa-1", 0).jwk;
    let mut short = rsa.clone();
    // A 1024-bit modulus: 128 bytes with the top bit set.
    short["n"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [0xC1u8; 128]
    ));
    assert_eq!(
        parse_one(short, &[Algorithm::RS256]),
        Err(SkipReason::RsaModulusSize(1024))
    );
    assert_eq!(parse_one(rsa, &[Algorithm::RS256]), Ok(()));
}

#[test]
fn rsa_modulus_leading_zero_is_tolerated() {
    let rsa = TestKey::rsa("rsa-1", 0).jwk;
    let n = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        rsa["n"].as_str().expect("n"),
    )
    .expect("base64");
    let mut padded = rsa.clone();
    padded["n"] = json!(base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [vec![0u8], n].concat()
    ));
    assert_eq!(parse_one(padded, &[Algorithm::RS256]), Ok(()));
}

fn b64(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

fn decode_b64(text: &Value) -> Vec<u8> {
    base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        text.as_str().expect("string"),
    )
    .expect("base64")
}

#[test]
fn rsa_key_with_bad_parameters_is_rejected() {
    let rsa = TestKey::rsa("rsa-1", 0).jwk;
    let mut even_modulus = decode_b64(&rsa["n"]);
    *even_modulus.last_mut().expect("modulus") &= 0xfe;
    let cases = [
        ("even modulus", "n", b64(&even_modulus)),
        ("exponent 1", "e", b64(&[1])),
        ("even exponent", "e", b64(&[1, 0, 0])),
        ("exponent over 33 bits", "e", b64(&[3, 0, 0, 0, 1])),
    ];
    for (case, field, value) in cases {
        let mut jwk = rsa.clone();
        jwk[field] = json!(value);
        assert_eq!(
            parse_one(jwk, &[Algorithm::RS256]),
            Err(SkipReason::InvalidKey(KeyFamily::Rsa)),
            "{case}"
        );
    }
}

#[test]
fn ec_point_off_curve_is_rejected() {
    let ec = TestKey::ec("ec-1").jwk;
    let mut y = decode_b64(&ec["y"]);
    y[31] ^= 1;
    let mut off_curve = ec.clone();
    off_curve["y"] = json!(b64(&y));

    assert_eq!(
        parse_one(off_curve, &[Algorithm::ES256]),
        Err(SkipReason::InvalidKey(KeyFamily::EcP256))
    );
    assert_eq!(parse_one(ec, &[Algorithm::ES256]), Ok(()));
}

#[test]
fn rsa_key_encodes_as_pkcs1_der() {
    use rsa::pkcs1::EncodeRsaPublicKey;

    let rsa = TestKey::rsa("rsa-1", 0).jwk;
    let modulus = decode_b64(&rsa["n"]);
    let exponent = decode_b64(&rsa["e"]);
    let expected = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&modulus),
        rsa::BigUint::from_bytes_be(&exponent),
    )
    .expect("public key")
    .to_pkcs1_der()
    .expect("PKCS#1 encoding");

    let encoded = super::public_key::encode_rsa_public_key(&modulus, &exponent);

    assert_eq!(encoded, expected.as_bytes());
}

#[test]
fn jwks_without_keys_array_fails() {
    assert!(parse_jwks(b"{}", &[Algorithm::RS256]).is_err());
    assert!(parse_jwks(b"{\"keys\": {}}", &[Algorithm::RS256]).is_err());
    assert!(parse_jwks(b"[]", &[Algorithm::RS256]).is_err());
    let empty = parse_jwks(b"{\"keys\": []}", &[Algorithm::RS256]).expect("valid");
    assert!(empty.keys.is_empty());
}

/// Serves `document` over HTTPS on 127.0.0.1 with a fresh self-signed certificate; returns the
/// JWKS URI and the certificate's PEM file.
async fn start_https_jwks(
    document: Value,
    dir: &std::path::Path,
) -> (http::Uri, std::path::PathBuf) {
    use hyper_util::rt::TokioIo;

    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("self-signed certificate");
    let cert_path = dir.join("jwks-cert.pem");
    let key_path = dir.join("jwks-key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).expect("write certificate");
    std::fs::write(&key_path, certified.key_pair.serialize_pem()).expect("write key");
    let tls = crate::tls::server_config(&cert_path, &key_path, None).expect("server TLS");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let body = document.to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_request| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let uri = format!("https://{addr}/.well-known/jwks.json")
        .parse()
        .expect("valid URI");
    (uri, cert_path)
}

#[tokio::test]
async fn https_fetch_trusts_ca_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (uri, cert_path) = start_https_jwks(jwks(&[&TestKey::ec("ec-1")]), dir.path()).await;
    let mut config = provider(JwksSource::Uri(uri));
    config.ca_file = Some(cert_path);
    let (store, _) = store(config);

    store.refresh_all().await.expect("HTTPS fetch");

    assert_eq!(kids(&store), ["ec-1"]);
}

#[tokio::test]
async fn https_fetch_rejects_untrusted_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (uri, _) = start_https_jwks(jwks(&[&TestKey::ec("ec-1")]), dir.path()).await;
    let config = provider(JwksSource::Uri(uri));

    // Without ca_file the system roots apply, which never include a fresh self-signed
    // certificate; a machine without system roots fails earlier, at setup.
    match KeyStore::new(&[config], Metrics::new()) {
        Ok(store) => {
            let err = store
                .refresh_all()
                .await
                .expect_err("untrusted certificate");
            assert!(matches!(err.problem, FetchProblem::Request(_)), "{err}");
            assert!(!store.is_ready());
        }
        Err(err) => assert!(matches!(err, KeyError::NoSystemRoots { .. }), "{err}"),
    }
}

#[test]
fn unreadable_ca_file_fails_setup() {
    let mut config = provider(JwksSource::Uri(
        "https://127.0.0.1:1/jwks".parse().expect("URI"),
    ));
    config.ca_file = Some("/nonexistent/ca.pem".into());

    let err = KeyStore::new(&[config], Metrics::new())
        .err()
        .expect("setup error");

    assert!(matches!(err, KeyError::Tls { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
