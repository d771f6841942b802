//! Error responses: each OAuth error code with its status and headers, and the 404 and 405
//! responses.

mod common;

use bytes::Bytes;
use common::{basic, Reply, TestSts, CLIENT_ID, CLIENT_SECRET, FORM};
use http::{header, Request, StatusCode};
use http_body_util::Full;
use portcullis_sts::{hash_secret, ClientConfig, GrantType};

fn assert_oauth_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.json);
    assert_eq!(reply.error(), code, "{:?}", reply.json);
    assert!(
        reply.json["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{:?}",
        reply.json
    );
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(reply.header(header::PRAGMA), Some("no-cache"));
}

fn assert_invalid_client(reply: &Reply) {
    assert_oauth_error(reply, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(
        reply.header(header::WWW_AUTHENTICATE),
        Some(r#"Basic realm="portcullis-sts""#)
    );
}

#[tokio::test]
async fn wrong_client_credentials_are_invalid_client() {
    let test = TestSts::start().await;
    let form = "grant_type=client_credentials";

    assert_invalid_client(&test.token_basic(CLIENT_ID, "wrongsecret", form).await);
    assert_invalid_client(&test.token_basic("unknown", CLIENT_SECRET, form).await);
    assert_invalid_client(&test.token_form(form).await);
    assert_invalid_client(
        &test
            .token_form("grant_type=client_credentials&client_id=applicationid&client_secret=x")
            .await,
    );
    test.stop().await;
}

#[tokio::test]
async fn wrong_password_is_invalid_grant() {
    let test = TestSts::start().await;

    for form in [
        "grant_type=password&username=peter&password=wrong",
        "grant_type=password&username=paul&password=peter123",
    ] {
        let reply = test.token_basic(CLIENT_ID, CLIENT_SECRET, form).await;
        assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_grant");
        assert_eq!(reply.header(header::WWW_AUTHENTICATE), None);
    }
    test.stop().await;
}

#[tokio::test]
async fn unknown_grant_is_unsupported_grant_type() {
    let test = TestSts::start().await;

    let reply = test
        .token_basic(
            CLIENT_ID,
            CLIENT_SECRET,
            "grant_type=authorization_code&code=x",
        )
        .await;

    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    test.stop().await;
}

#[tokio::test]
async fn disallowed_grant_is_unauthorized_client() {
    let machine_secret = hash_secret("machinesecret").unwrap();
    let test = TestSts::start_with(|config| {
        config.clients.push(ClientConfig {
            id: "machine".to_owned(),
            secret_hash: machine_secret,
            grants: vec![GrantType::ClientCredentials],
            scopes: vec!["foo".to_owned()],
            audiences: vec!["orders".to_owned()],
            token_lifetime_secs: 60,
        });
    })
    .await;

    let reply = test
        .token_basic(
            "machine",
            "machinesecret",
            "grant_type=password&username=peter&password=peter123",
        )
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unauthorized_client");

    let allowed = test
        .token_basic("machine", "machinesecret", "grant_type=client_credentials")
        .await;
    assert_eq!(allowed.status, StatusCode::OK, "{:?}", allowed.json);
    test.stop().await;
}

#[tokio::test]
async fn unknown_scope_is_invalid_scope() {
    let test = TestSts::start().await;

    let reply = test
        .token_basic(
            CLIENT_ID,
            CLIENT_SECRET,
            "grant_type=password&username=peter&password=peter123&scope=foo%20admin",
        )
        .await;

    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope");
    test.stop().await;
}

#[tokio::test]
async fn unknown_audience_is_invalid_target() {
    let test = TestSts::start().await;

    let reply = test
        .token_basic(
            CLIENT_ID,
            CLIENT_SECRET,
            "grant_type=client_credentials&audience=payments",
        )
        .await;

    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_target");
    test.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_invalid_request() {
    let test = TestSts::start().await;
    let cases = [
        ("missing grant_type", "scope=foo"),
        ("missing username", "grant_type=password&password=peter123"),
        ("missing refresh_token", "grant_type=refresh_token"),
        (
            "repeated parameter",
            "grant_type=client_credentials&scope=foo&scope=bar",
        ),
        (
            "both client authentication methods",
            "grant_type=client_credentials&client_secret=applicationsecret",
        ),
    ];
    for (case, form) in cases {
        let reply = test.token_basic(CLIENT_ID, CLIENT_SECRET, form).await;
        assert_eq!(reply.error(), "invalid_request", "{case}: {:?}", reply.json);
        assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    }
    test.stop().await;
}

#[tokio::test]
async fn oversized_body_is_invalid_request() {
    let test = TestSts::start().await;
    let form = format!(
        "grant_type=client_credentials&padding={}",
        "a".repeat(20_000)
    );

    let reply = test.token_basic(CLIENT_ID, CLIENT_SECRET, &form).await;

    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    test.stop().await;
}

#[tokio::test]
async fn json_body_is_invalid_request() {
    let test = TestSts::start().await;
    let request = Request::post(format!("{}/oauth/token", test.base))
        .header(header::AUTHORIZATION, basic(CLIENT_ID, CLIENT_SECRET))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"grant_type":"client_credentials"}"#,
        )))
        .unwrap();

    let reply = test.send(request).await;

    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    test.stop().await;
}

#[tokio::test]
async fn get_on_token_endpoint_is_405() {
    let test = TestSts::start().await;

    let reply = test.get("/oauth/token").await;

    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header(header::ALLOW), Some("POST"));
    assert_eq!(reply.error(), "method_not_allowed");

    let request = Request::post(format!("{}/.well-known/jwks.json", test.base))
        .header(header::CONTENT_TYPE, FORM)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = test.send(request).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD"));
    test.stop().await;
}

#[tokio::test]
async fn unknown_path_is_json_404() {
    let test = TestSts::start().await;

    let reply = test.get("/oauth/authorize").await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/json"));
    assert_eq!(reply.error(), "not_found");
    test.stop().await;
}
