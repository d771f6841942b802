//! The refresh token grant: rotation, reuse detection, and scope narrowing.

mod common;

use common::{TestSts, CLIENT_ID, CLIENT_SECRET};
use http::StatusCode;
use portcullis_sts::{hash_secret, ClientConfig, GrantType};
use serde_json::Value;

async fn refresh(test: &TestSts, token: &str, extra: &str) -> common::Reply {
    let form = format!("grant_type=refresh_token&refresh_token={token}{extra}");
    test.token_basic(CLIENT_ID, CLIENT_SECRET, &form).await
}

fn refresh_token(body: &Value) -> String {
    body["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn refresh_rotates_token() {
    let test = TestSts::start().await;
    let first = refresh_token(&test.password_token("&scope=foo").await);

    let reply = refresh(&test, &first, "").await;

    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
    let second = refresh_token(&reply.json);
    assert_ne!(second, first);
    assert_eq!(reply.json["scope"], "foo");
    let (_, claims) = test
        .verify(reply.json["access_token"].as_str().unwrap())
        .await;
    assert_eq!(claims.sub, "peter");
    assert_eq!(claims.client_id, CLIENT_ID);
    assert_eq!(claims.scope, "foo");

    let third = refresh(&test, &second, "").await;
    assert_eq!(third.status, StatusCode::OK, "{:?}", third.json);
    test.stop().await;
}

#[tokio::test]
async fn reused_token_revokes_chain() {
    let test = TestSts::start().await;
    let first = refresh_token(&test.password_token("").await);
    let second = refresh_token(&refresh(&test, &first, "").await.json);

    let reuse = refresh(&test, &first, "").await;

    assert_eq!(reuse.status, StatusCode::BAD_REQUEST);
    assert_eq!(reuse.error(), "invalid_grant");
    let after_revocation = refresh(&test, &second, "").await;
    assert_eq!(after_revocation.status, StatusCode::BAD_REQUEST);
    assert_eq!(after_revocation.error(), "invalid_grant");
    test.stop().await;
}

#[tokio::test]
async fn refresh_narrows_but_never_widens() {
    let test = TestSts::start().await;
    let original = refresh_token(&test.password_token("&scope=foo%20bar").await);

    let narrowed = refresh(&test, &original, "&scope=bar").await;
    assert_eq!(narrowed.status, StatusCode::OK, "{:?}", narrowed.json);
    assert_eq!(narrowed.json["scope"], "bar");

    // The rotated token still grants the original scopes.
    let next = refresh_token(&narrowed.json);
    let full = refresh(&test, &next, "").await;
    assert_eq!(full.json["scope"], "foo bar");
    test.stop().await;
}

#[tokio::test]
async fn widening_scope_is_invalid_scope() {
    let test = TestSts::start().await;
    let token = refresh_token(&test.password_token("&scope=foo").await);

    let widened = refresh(&test, &token, "&scope=foo%20bar").await;

    assert_eq!(widened.status, StatusCode::BAD_REQUEST);
    assert_eq!(widened.error(), "invalid_scope");
    // The rejected request did not use the token up.
    let retry = refresh(&test, &token, "").await;
    assert_eq!(retry.status, StatusCode::OK, "{:?}", retry.json);
    test.stop().await;
}

#[tokio::test]
async fn unknown_token_is_invalid_grant() {
    let test = TestSts::start().await;

    let reply = refresh(&test, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "").await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "invalid_grant");
    test.stop().await;
}

#[tokio::test]
async fn other_client_cannot_refresh() {
    let other_secret = hash_secret("othersecret").unwrap();
    let test = TestSts::start_with(|config| {
        config.clients.push(ClientConfig {
            id: "other".to_owned(),
            secret_hash: other_secret,
            grants: vec![GrantType::RefreshToken],
            scopes: vec!["foo".to_owned()],
            audiences: vec!["orders".to_owned()],
            token_lifetime_secs: 60,
        });
    })
    .await;
    let token = refresh_token(&test.password_token("&scope=foo").await);

    let form = format!("grant_type=refresh_token&refresh_token={token}");
    let stolen = test.token_basic("other", "othersecret", &form).await;

    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
    assert_eq!(stolen.error(), "invalid_grant");
    let owner = refresh(&test, &token, "").await;
    assert_eq!(owner.status, StatusCode::OK, "{:?}", owner.json);
    test.stop().await;
}

#[tokio::test]
async fn client_without_refresh_grant_gets_none() {
    let test = TestSts::start_with(|config| {
        config.clients[0].grants = vec![GrantType::Password];
    })
    .await;

    let body = test.password_token("").await;

    assert!(body.get("refresh_token").is_none(), "{body:?}");
    test.stop().await;
}

#[tokio::test]
async fn restart_forgets_refresh_tokens() {
    let test = TestSts::start().await;
    let token = refresh_token(&test.password_token("").await);
    let data_dir = test.data_dir;
    test.sts.shutdown().await;

    let restarted = TestSts::start_in(common::demo_config(data_dir.path()), data_dir).await;
    let reply = refresh(&restarted, &token, "").await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error(), "invalid_grant");
    restarted.stop().await;
}
