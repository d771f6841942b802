//! Successful token requests: the book's password grant, client credentials, form-field
//! client authentication, scope and audience narrowing, and the response headers.

mod common;

use common::{TestSts, CLIENT_ID, CLIENT_SECRET, FORM};
use http::{header, StatusCode};
use portcullis_sts::ACCESS_TOKEN_TYPE;

#[tokio::test]
async fn password_grant_matches_book() {
    let test = TestSts::start().await;

    let reply = test
        .token_basic(
            CLIENT_ID,
            CLIENT_SECRET,
            "grant_type=password&username=peter&password=peter123&scope=foo",
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(reply.header(header::PRAGMA), Some("no-cache"));
    assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/json"));
    assert_eq!(reply.json["token_type"], "Bearer");
    assert_eq!(reply.json["expires_in"], 3600);
    assert_eq!(reply.json["scope"], "foo");
    let refresh_token = reply.json["refresh_token"].as_str().unwrap();
    assert_eq!(refresh_token.len(), 43);

    let access_token = reply.json["access_token"].as_str().unwrap();
    let (jwt_header, claims) = test.verify(access_token).await;
    assert_eq!(jwt_header.typ.as_deref(), Some(ACCESS_TOKEN_TYPE));
    assert_eq!(jwt_header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(claims.iss, "https://localhost:8443");
    assert_eq!(claims.sub, "peter");
    assert_eq!(claims.aud, ["orders", "inventory"]);
    assert_eq!(claims.client_id, CLIENT_ID);
    assert_eq!(claims.scope, "foo");
    assert_eq!(claims.nbf, claims.iat);
    assert_eq!(claims.exp, claims.iat + 3600);
    assert!(uuid::Uuid::parse_str(&claims.jti).is_ok(), "{}", claims.jti);

    test.stop().await;
}

#[tokio::test]
async fn tokens_get_unique_ids() {
    let test = TestSts::start().await;

    let first = test.password_token("").await;
    let second = test.password_token("").await;

    let (_, first) = test.verify(first["access_token"].as_str().unwrap()).await;
    let (_, second) = test.verify(second["access_token"].as_str().unwrap()).await;
    assert_ne!(first.jti, second.jti);
    test.stop().await;
}

#[tokio::test]
async fn missing_scope_grants_all_scopes() {
    let test = TestSts::start().await;

    let body = test.password_token("").await;

    assert_eq!(body["scope"], "foo bar");
    let (_, claims) = test.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims.scope, "foo bar");
    test.stop().await;
}

#[tokio::test]
async fn client_credentials_subject_is_client() {
    let test = TestSts::start().await;

    let reply = test
        .token_basic(
            CLIENT_ID,
            CLIENT_SECRET,
            "grant_type=client_credentials&scope=bar",
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    assert!(
        reply.json.get("refresh_token").is_none(),
        "{:?}",
        reply.json
    );
    assert_eq!(reply.json["scope"], "bar");
    let (_, claims) = test
        .verify(reply.json["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims.sub, CLIENT_ID);
    assert_eq!(claims.client_id, CLIENT_ID);
    assert_eq!(claims.scope, "bar");
    test.stop().await;
}

#[tokio::test]
async fn form_fields_authenticate_client() {
    let test = TestSts::start().await;

    let reply = test
        .token_form(
            "grant_type=client_credentials&client_id=applicationid&client_secret=applicationsecret",
        )
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    let (_, claims) = test
        .verify(reply.json["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims.sub, CLIENT_ID);
    test.stop().await;
}

#[tokio::test]
async fn audience_parameter_narrows_aud() {
    let test = TestSts::start().await;

    let body = test.password_token("&audience=inventory").await;

    let (_, claims) = test.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims.aud, ["inventory"]);
    test.stop().await;
}

#[tokio::test]
async fn charset_parameter_is_accepted() {
    let test = TestSts::start().await;
    let request = http::Request::post(format!("{}/oauth/token", test.base))
        .header(
            header::AUTHORIZATION,
            common::basic(CLIENT_ID, CLIENT_SECRET),
        )
        .header(header::CONTENT_TYPE, format!("{FORM};charset=UTF-8"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"grant_type=client_credentials",
        )))
        .unwrap();

    let reply = test.send(request).await;

    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    test.stop().await;
}

#[tokio::test]
async fn custom_client_lifetime_sets_exp() {
    let test = TestSts::start_with(|config| config.clients[0].token_lifetime_secs = 120).await;

    let body = test.password_token("").await;

    assert_eq!(body["expires_in"], 120);
    let (_, claims) = test.verify(body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims.exp - claims.iat, 120);
    test.stop().await;
}
