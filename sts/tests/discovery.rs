//! The JWKS and metadata documents, and shutdown.

mod common;

use common::TestSts;
use http::{header, StatusCode};
use serde_json::json;

#[tokio::test]
async fn oauth_metadata_derives_from_issuer() {
    let test = TestSts::start().await;

    let reply = test.get("/.well-known/oauth-authorization-server").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header(header::CACHE_CONTROL),
        Some("public, max-age=300")
    );
    let document = reply.json;
    assert_eq!(document["issuer"], "https://localhost:8443");
    assert_eq!(
        document["token_endpoint"],
        "https://localhost:8443/oauth/token"
    );
    assert_eq!(
        document["jwks_uri"],
        "https://localhost:8443/.well-known/jwks.json"
    );
    assert_eq!(
        document["grant_types_supported"],
        json!(["password", "client_credentials", "refresh_token"])
    );
    assert_eq!(document["scopes_supported"], json!(["foo", "bar"]));
    assert_eq!(
        document["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(document["response_types_supported"], json!([]));
    assert!(document
        .get("id_token_signing_alg_values_supported")
        .is_none());
    test.stop().await;
}

#[tokio::test]
async fn openid_configuration_adds_oidc_members() {
    let test = TestSts::start_with(|config| {
        config.issuer = "https://sts.example.test:9443".to_owned();
    })
    .await;

    let document = test.get("/.well-known/openid-configuration").await.json;

    assert_eq!(document["issuer"], "https://sts.example.test:9443");
    assert_eq!(
        document["jwks_uri"],
        "https://sts.example.test:9443/.well-known/jwks.json"
    );
    assert_eq!(document["subject_types_supported"], json!(["public"]));
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert!(document.get("authorization_endpoint").is_none());
    test.stop().await;
}

#[tokio::test]
async fn jwks_is_cacheable_public_keys() {
    let test = TestSts::start().await;

    let reply = test.get("/.well-known/jwks.json").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header(header::CACHE_CONTROL),
        Some("public, max-age=300")
    );
    assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/json"));
    let keys = reply.json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    for member in ["n", "e", "kid", "alg", "use"] {
        assert!(key[member].is_string(), "{member} missing in {key}");
    }
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(key.get(private).is_none(), "{private} leaked in {key}");
    }
    test.stop().await;
}

#[tokio::test]
async fn shutdown_closes_listener() {
    let test = TestSts::start().await;
    let addr = test.sts.local_addr();
    assert_eq!(
        test.get("/.well-known/jwks.json").await.status,
        StatusCode::OK
    );

    test.sts.shutdown().await;

    let connect = tokio::net::TcpStream::connect(addr).await;
    assert!(connect.is_err(), "the listener still accepts connections");
}
