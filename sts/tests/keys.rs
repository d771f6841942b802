//! Signing keys on disk, rotation, algorithms, and the TLS modes.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bytes::Bytes;
use common::{demo_config, TestSts};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::decode_header;
use portcullis_sts::{rotate_key, start, SigningAlgorithm, TlsMode};
use serde_json::Value;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn kid_of(token: &str) -> String {
    decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn key_files_are_private_and_reused() {
    let test = TestSts::start().await;
    let body = test.password_token("").await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let kid = kid_of(&token);

    let key_dir = test.data_dir.path().join("keys");
    assert_eq!(mode(&key_dir.join(format!("{kid}.pem"))), 0o600);
    assert_eq!(mode(&key_dir.join("index.json")), 0o600);
    assert_eq!(
        mode(&test.data_dir.path().join("tls/sts-ca-key.pem")),
        0o600
    );
    assert_eq!(mode(&test.data_dir.path().join("tls/sts-key.pem")), 0o600);

    let data_dir = test.data_dir;
    let ca_before = fs::read(data_dir.path().join("tls/sts-ca.pem")).unwrap();
    test.sts.shutdown().await;
    let restarted = TestSts::start_in(demo_config(data_dir.path()), data_dir).await;

    let again = restarted.password_token("").await;
    assert_eq!(kid_of(again["access_token"].as_str().unwrap()), kid);
    let (_, claims) = restarted.verify(&token).await;
    assert_eq!(claims.sub, "peter");
    let ca_after = fs::read(restarted.data_dir.path().join("tls/sts-ca.pem")).unwrap();
    assert_eq!(ca_after, ca_before);
    restarted.stop().await;
}

#[tokio::test]
async fn running_server_picks_up_rotation() {
    let test = TestSts::start().await;
    let old_token = test.password_token("").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_kid = kid_of(&old_token);

    let new_kid = rotate_key(&demo_config(test.data_dir.path())).unwrap();

    assert_ne!(new_kid, old_kid);
    let new_token = test.password_token("").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(kid_of(&new_token), new_kid);
    let jwks = test.jwks().await;
    assert!(jwks.find(&old_kid).is_some());
    assert!(jwks.find(&new_kid).is_some());
    test.verify(&old_token).await;
    test.verify(&new_token).await;
    test.stop().await;
}

#[tokio::test]
async fn changed_algorithm_rotates_on_start() {
    let test = TestSts::start().await;
    let old_kid = kid_of(
        test.password_token("").await["access_token"]
            .as_str()
            .unwrap(),
    );
    let data_dir = test.data_dir;
    test.sts.shutdown().await;

    let mut config = demo_config(data_dir.path());
    config.signing_algorithm = SigningAlgorithm::ES256;
    let restarted = TestSts::start_in(config, data_dir).await;

    let token = restarted.password_token("").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    assert!(restarted.jwks().await.find(&old_kid).is_some());
    restarted.stop().await;
}

async fn check_algorithm(algorithm: SigningAlgorithm, expected_jwk: &[(&str, &str)]) {
    let test = TestSts::start_with(|config| config.signing_algorithm = algorithm).await;

    let token = test.password_token("").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let (header, claims) = test.verify(&token).await;
    assert_eq!(header.alg, algorithm_of(algorithm));
    assert_eq!(claims.sub, "peter");
    let jwks = test.get("/.well-known/jwks.json").await.json;
    let key = &jwks["keys"][0];
    assert_eq!(key["alg"], algorithm.as_str());
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"].as_str(), header.kid.as_deref());
    for (member, value) in expected_jwk {
        assert_eq!(key[*member], *value, "{member} in {key}");
    }
    assert!(
        key.get("d").is_none(),
        "the JWKS leaks a private key: {key}"
    );
    test.stop().await;
}

fn algorithm_of(algorithm: SigningAlgorithm) -> jsonwebtoken::Algorithm {
    match algorithm {
        SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        SigningAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
    }
}

#[tokio::test]
async fn rs256_tokens_verify_from_jwks() {
    check_algorithm(SigningAlgorithm::RS256, &[("kty", "RSA"), ("e", "AQAB")]).await;
}

#[tokio::test]
async fn es256_tokens_verify_from_jwks() {
    check_algorithm(SigningAlgorithm::ES256, &[("kty", "EC"), ("crv", "P-256")]).await;
}

#[tokio::test]
async fn eddsa_tokens_verify_from_jwks() {
    check_algorithm(
        SigningAlgorithm::EdDSA,
        &[("kty", "OKP"), ("crv", "Ed25519")],
    )
    .await;
}

#[tokio::test]
async fn configured_tls_files_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let (ca_path, cert_path, key_path) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    fs::write(&ca_path, ca.pem()).unwrap();
    fs::write(&cert_path, leaf.pem()).unwrap();
    fs::write(&key_path, leaf_key.serialize_pem()).unwrap();

    let mut config = demo_config(&dir.path().join("data"));
    config.tls = TlsMode::Files {
        cert: cert_path,
        key: key_path,
    };
    let sts = start(config).await.unwrap();
    assert_eq!(sts.ca_cert_path(), None);

    let client = common::https_client(&ca_path);
    let uri = format!(
        "https://127.0.0.1:{}/.well-known/jwks.json",
        sts.local_addr().port()
    );
    let response = client
        .request(Request::get(uri).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!dir.path().join("data/tls").exists());
    sts.shutdown().await;
}

#[tokio::test]
async fn disabled_tls_serves_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = demo_config(dir.path());
    config.tls = TlsMode::Disabled;
    config.issuer = "http://127.0.0.1:8080".to_owned();
    let sts = start(config).await.unwrap();

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!(
        "http://127.0.0.1:{}/.well-known/oauth-authorization-server",
        sts.local_addr().port()
    );
    let response = client
        .request(Request::get(uri).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let metadata: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        metadata["token_endpoint"],
        "http://127.0.0.1:8080/oauth/token"
    );
    sts.shutdown().await;
}
