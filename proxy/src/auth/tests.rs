use std::path::Path;
use std::sync::Arc;

use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::*;
use crate::keys::testing::{current_claims, jwks, KeyServer, KeyServerSource, TestKey, ISSUER};
use crate::policy::PathProblem;
use bearer::CredentialProblem;

async fn body_json(response: Response<Full<Bytes>>) -> Value {
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("JSON body")
}

fn challenge(response: &Response<Full<Bytes>>) -> Option<&str> {
    response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|value| value.to_str().expect("ASCII challenge"))
}

#[tokio::test]
async fn missing_token_response() {
    let response = AuthFailure::MissingToken.to_response("portcullis");

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), Some(r#"Bearer realm="portcullis""#));
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(
        body_json(response).await,
        json!({"error": "unauthorized", "error_description": "a bearer token is required"})
    );
}

#[tokio::test]
async fn invalid_token_response() {
    let failure = AuthFailure::InvalidToken(VerifyError::Expired {
        expired_at: 1_796_378_400,
    });

    let response = failure.to_response("orders");

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&response),
        Some(
            r#"Bearer realm="orders", error="invalid_token", error_description="the token expired at 2026-12-04T10:00:00Z""#
        )
    );
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(
        body_json(response).await,
        json!({
            "error": "invalid_token",
            "error_description": "the token expired at 2026-12-04T10:00:00Z"
        })
    );
    assert_eq!(failure.reason(), "expired");
}

#[tokio::test]
async fn insufficient_scope_response() {
    let failure = AuthFailure::InsufficientScope {
        required: vec!["foo".into(), "bar".into()],
    };

    let response = failure.to_response("portcullis");

    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&response),
        Some(
            r#"Bearer realm="portcullis", error="insufficient_scope", error_description="the request requires the scopes: foo bar", scope="foo bar""#
        )
    );
    assert_eq!(body_json(response).await["error"], "insufficient_scope");
    assert_eq!(failure.reason(), "insufficient_scope");
}

#[tokio::test]
async fn invalid_request_response() {
    let failure = AuthFailure::InvalidRequest(InvalidRequest::UnsafePath(PathProblem::DotSegment));

    let response = failure.to_response("portcullis");

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        challenge(&response),
        Some(
            r#"Bearer realm="portcullis", error="invalid_request", error_description="the request path contains a . or .. segment""#
        )
    );
    assert_eq!(body_json(response).await["error"], "invalid_request");
    assert_eq!(failure.reason(), "unsafe_path");
}

#[tokio::test]
async fn keys_unavailable_response() {
    let failure = AuthFailure::KeysUnavailable {
        issuer: ISSUER.into(),
    };

    let response = failure.to_response("portcullis");

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[RETRY_AFTER], "5");
    assert_eq!(challenge(&response), None);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(
        body_json(response).await["error"],
        "temporarily_unavailable"
    );
    assert_eq!(failure.reason(), "keys_unavailable");
}

#[test]
fn challenge_values_are_quote_escaped() {
    let failure = AuthFailure::InsufficientScope {
        required: vec!["a\"b".into(), "c\\d".into()],
    };

    let response = failure.to_response("portcullis");

    let value = challenge(&response).expect("challenge");
    assert!(value.ends_with(r#"scope="a\"b c\\d""#), "{value}");
}

#[test]
fn quoted_string_replaces_controls() {
    assert_eq!(quoted_string("plain"), "\"plain\"");
    assert_eq!(quoted_string("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(quoted_string("a\nb\u{7f}"), "\"a?b?\"");
}

/// Builds an authorizer over a live JWKS server, with routes like the demo's order service.
async fn authorizer(key: &TestKey) -> (Authorizer, KeyServer, Metrics) {
    let server = KeyServer::start(jwks(&[key])).await;
    let text = format!(
        r#"
        [inbound]
        upstream = "http://127.0.0.1:8081"

        [[providers]]
        issuer = "{ISSUER}"
        audiences = ["orders"]
        jwks_uri = "{}"

        [[routes]]
        path = "/healthz"
        auth = "none"

        [[routes]]
        prefix = "/orders"
        methods = ["POST"]
        scopes = ["foo"]

        [[routes]]
        prefix = "/admin"
        scopes = ["admin"]
        "#,
        server.uri()
    );
    let config = Config::from_toml(&text, Path::new("/tmp")).expect("valid config");
    let metrics = Metrics::new();
    let keys = KeyStore::new(&config.providers, metrics.clone()).expect("key store");
    keys.refresh_all().await.expect("keys");
    (
        Authorizer::new(&config, keys, metrics.clone()),
        server,
        metrics,
    )
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("valid header"),
    );
    headers
}

#[tokio::test]
async fn authorize_accepts_valid_token() {
    let key = TestKey::rsa("rsa-1", 0);
    let (authorizer, _server, metrics) = authorizer(&key).await;
    let headers = bearer(&key.sign(&current_claims()));

    let verified = authorizer
        .authorize(&Method::POST, "/orders", None, &headers)
        .await
        .expect("authorized")
        .expect("a verified token");

    assert_eq!(verified.subject(), Some("peter"));
    assert_eq!(metrics.verifications.with_label_values(&["valid"]).get(), 1);
    // No claim requirement on the route, so the cached token keeps only the payload text.
    assert!(
        verified.claims.get().is_none(),
        "claims parsed without need"
    );
}

#[tokio::test]
async fn authorize_open_route_needs_nothing() {
    let key = TestKey::ec("ec-1");
    let (authorizer, _server, _) = authorizer(&key).await;

    let result = authorizer
        .authorize(&Method::GET, "/healthz", None, &HeaderMap::new())
        .await;

    assert_eq!(result, Ok(None));
}

#[tokio::test]
async fn authorize_rejects_unsafe_path_first() {
    let key = TestKey::ec("ec-1");
    let (authorizer, _server, _) = authorizer(&key).await;

    let result = authorizer
        .authorize(&Method::GET, "/healthz/../admin", None, &HeaderMap::new())
        .await;

    assert_eq!(
        result,
        Err(AuthFailure::InvalidRequest(InvalidRequest::UnsafePath(
            PathProblem::DotSegment
        )))
    );
}

#[tokio::test]
async fn authorize_failures_map_to_variants() {
    let key = TestKey::ec("ec-1");
    let (authorizer, _server, _) = authorizer(&key).await;
    let valid = key.sign(&current_claims());
    let mut expired_claims = current_claims();
    expired_claims["exp"] = json!(1_000_000_000);
    let expired = key.sign(&expired_claims);

    let missing = authorizer
        .authorize(&Method::GET, "/orders", None, &HeaderMap::new())
        .await;
    assert_eq!(missing, Err(AuthFailure::MissingToken));

    let mut basic = HeaderMap::new();
    basic.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    let other_scheme = authorizer
        .authorize(&Method::GET, "/orders", None, &basic)
        .await;
    assert_eq!(other_scheme, Err(AuthFailure::MissingToken));

    let invalid = authorizer
        .authorize(&Method::GET, "/orders", None, &bearer(&expired))
        .await;
    assert_eq!(
        invalid,
        Err(AuthFailure::InvalidToken(VerifyError::Expired {
            expired_at: 1_000_000_000
        }))
    );

    let scope = authorizer
        .authorize(&Method::GET, "/admin/users", None, &bearer(&valid))
        .await;
    assert_eq!(
        scope,
        Err(AuthFailure::InsufficientScope {
            required: vec!["admin".into()]
        })
    );

    let mut doubled = bearer(&valid);
    doubled.append(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
    let twice = authorizer
        .authorize(&Method::GET, "/orders", None, &doubled)
        .await;
    assert_eq!(
        twice,
        Err(AuthFailure::InvalidRequest(InvalidRequest::Credentials(
            CredentialProblem::MultipleAuthorizationHeaders
        )))
    );
}

#[tokio::test]
async fn authorize_without_keys_is_unavailable() {
    let key = TestKey::ec("ec-1");
    let server = KeyServer::start(jwks(&[&key])).await;
    let text = format!(
        "[inbound]\nupstream = \"http://127.0.0.1:8081\"\n[[providers]]\nissuer = \"{ISSUER}\"\naudiences = [\"orders\"]\njwks_uri = \"{}\"\n",
        server.uri()
    );
    let config = Config::from_toml(&text, Path::new("/tmp")).expect("valid config");
    let metrics = Metrics::new();
    let keys = KeyStore::new(&config.providers, metrics.clone()).expect("key store");
    let authorizer = Authorizer::new(&config, Arc::clone(&keys), metrics);

    let result = authorizer
        .authorize(
            &Method::GET,
            "/orders",
            None,
            &bearer(&key.sign(&current_claims())),
        )
        .await;

    let failure = result.expect_err("no keys yet");
    assert_eq!(
        failure,
        AuthFailure::KeysUnavailable {
            issuer: ISSUER.into()
        }
    );
    assert_eq!(failure.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.total_hits(), 0);
}
