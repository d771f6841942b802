//! The inbound listener end to end: a client, an in-process sidecar and a recording app, all
//! on 127.0.0.1. Each rejection test also checks that the app received nothing.

mod common;

use std::time::Duration;

use http::{StatusCode, Version};
use serde_json::json;

use common::{
    get, get_tls, metric, metrics_text, pki, raw_request, signer, tamper_signature,
    tls_client_config, App, Spec,
};

#[tokio::test]
async fn valid_token_forwarded_with_identity() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;
    let token = signer().token();

    let reply = get(
        sidecar.inbound_addr(),
        "/orders/7?expand=items",
        Some(&token),
    )
    .await
    .unwrap();

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.header("x-app"), Some("yes"));
    let requests = app.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.uri, "/orders/7?expand=items");
    assert_eq!(request.one("authorization"), format!("Bearer {token}"));
    assert_eq!(request.one("x-portcullis-subject"), "peter");
    assert_eq!(request.one("x-portcullis-scope"), "foo bar");
    assert_eq!(request.one("x-portcullis-client-id"), "applicationid");
    assert_eq!(request.one("x-portcullis-issuer"), common::ISSUER);
}

#[tokio::test]
async fn missing_token_gets_challenge() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;

    let reply = get(sidecar.inbound_addr(), "/orders", None).await.unwrap();

    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="portcullis""#)
    );
    assert!(
        app.requests().is_empty(),
        "the app must not see the request"
    );
}

#[tokio::test]
async fn invalid_tokens_rejected() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;
    let signer = signer();
    let cases = [
        ("tampered", tamper_signature(&signer.token()), "signature"),
        (
            "expired",
            signer.token_with(json!({ "exp": common::now() - 3600, "iat": common::now() - 7200, "nbf": common::now() - 7200 })),
            "expired",
        ),
        (
            "wrong audience",
            signer.token_with(json!({ "aud": ["payments"] })),
            "audience",
        ),
        (
            "wrong issuer",
            signer.token_with(json!({ "iss": "https://evil.test" })),
            "issuer",
        ),
    ];

    for (case, token, description_word) in cases {
        let reply = get(sidecar.inbound_addr(), "/orders", Some(&token))
            .await
            .unwrap();

        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{case}");
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with(r#"Bearer realm="portcullis""#),
            "{case}: {challenge}"
        );
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{case}: {challenge}"
        );
        let body = reply.json();
        assert_eq!(body["error"], "invalid_token", "{case}");
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            description.to_lowercase().contains(description_word),
            "{case}: error_description {description:?} should mention {description_word:?}"
        );
        assert!(
            challenge.contains(&format!("error_description=\"{description}\"")),
            "{case}: the challenge and the body should carry the same description: {challenge}"
        );
    }
    assert!(
        app.requests().is_empty(),
        "the app must not see any request"
    );
}

#[tokio::test]
async fn missing_scope_gets_403() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;

    let reply = get(
        sidecar.inbound_addr(),
        "/reports/daily",
        Some(&signer().token()),
    )
    .await
    .unwrap();

    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains("reports:read"), "{challenge}");
    assert_eq!(reply.json()["error"], "insufficient_scope");
    assert!(app.requests().is_empty());

    let token = signer().token_with(json!({ "scope": "foo reports:read" }));
    let reply = get(sidecar.inbound_addr(), "/reports/daily", Some(&token))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(app.requests().len(), 1);
}

#[tokio::test]
async fn public_route_needs_no_token() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;

    let reply = get(sidecar.inbound_addr(), "/public/status", None)
        .await
        .unwrap();

    assert_eq!(reply.status, StatusCode::OK);
    let requests = app.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].uri, "/public/status");
    assert!(requests[0].all("x-portcullis-subject").is_empty());
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_app() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;
    let token = signer().token();

    // With a valid token: the sidecar's values replace every client copy.
    let reply = raw_request(
        sidecar.inbound_addr(),
        &format!(
            "GET /orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer {token}\r\n\
             X-Portcullis-Subject: admin\r\nx-portcullis-subject: root\r\n\
             X-PORTCULLIS-SCOPE: everything\r\nX-pOrTcUlLiS-Role: superuser\r\n"
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // On a route without auth: every client copy is removed and none is added.
    let reply = raw_request(
        sidecar.inbound_addr(),
        "GET /public/x HTTP/1.1\r\nHost: orders\r\nX-Portcullis-Subject: admin\r\n\
         x-PORTCULLIS-subject: root\r\nX-Portcullis-Issuer: https://evil.test\r\n",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let requests = app.requests();
    assert_eq!(requests.len(), 2);
    let with_token = &requests[0];
    assert_eq!(with_token.all("x-portcullis-subject"), vec!["peter"]);
    assert_eq!(with_token.all("x-portcullis-scope"), vec!["foo bar"]);
    assert!(with_token.all("x-portcullis-role").is_empty());
    let public = &requests[1];
    let leaked: Vec<_> = public
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-portcullis-"))
        .collect();
    assert!(
        leaked.is_empty(),
        "identity headers reached the app: {leaked:?}"
    );
}

#[tokio::test]
async fn hop_by_hop_headers_removed() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;

    let reply = raw_request(
        sidecar.inbound_addr(),
        "GET /public/hop HTTP/1.1\r\nHost: orders\r\nKeep-Alive: timeout=5\r\n\
         Connection: X-Private, keep-alive\r\nX-Private: secret\r\nTE: trailers\r\n\
         Proxy-Authorization: Basic dXNlcjpwYXNz\r\nUpgrade: websocket\r\nX-Kept: 1\r\n",
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let requests = app.requests();
    let request = &requests[0];
    for name in [
        "keep-alive",
        "x-private",
        "te",
        "proxy-authorization",
        "upgrade",
    ] {
        assert!(request.all(name).is_empty(), "`{name}` reached the app");
    }
    // The app's own `Connection` and `Keep-Alive` values are its business with the
    // sidecar; its HTTP/1.1 client may add `Connection` for pooling, but never ours.
    assert!(!request
        .all("connection")
        .iter()
        .any(|v| v.contains("X-Private")));
    assert_eq!(request.one("x-kept"), "1");

    // The app's response named `X-App-Hop` in `Connection`; the client must not see it.
    assert!(!reply.head.contains("x-app-hop"), "{}", reply.head);
    assert!(
        !reply.head.contains("keep-alive: timeout"),
        "{}",
        reply.head
    );
    assert!(reply.head.contains("x-app: yes"), "{}", reply.head);
}

#[tokio::test]
async fn forwarded_headers_set() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;

    let reply = raw_request(
        sidecar.inbound_addr(),
        "GET /public/a HTTP/1.1\r\nHost: orders\r\nX-Forwarded-For: 203.0.113.9\r\n\
         X-Forwarded-Proto: https\r\n",
    )
    .await;
    assert_eq!(reply.status, 200);

    let requests = app.requests();
    assert_eq!(requests[0].one("x-forwarded-for"), "203.0.113.9, 127.0.0.1");
    assert_eq!(requests[0].one("x-forwarded-proto"), "http");
    assert_eq!(requests[0].one("host"), "orders");
}

#[tokio::test]
async fn authorization_dropped_when_configured() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new(dir.path(), app.addr);
    spec.forward_authorization = false;
    let sidecar = spec.start().await;

    let reply = get(sidecar.inbound_addr(), "/orders", Some(&signer().token()))
        .await
        .unwrap();

    assert_eq!(reply.status, StatusCode::OK);
    let requests = app.requests();
    assert!(requests[0].all("authorization").is_empty());
    assert_eq!(requests[0].one("x-portcullis-subject"), "peter");
}

#[tokio::test]
async fn http2_over_tls_reaches_http1_app() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let sidecar = Spec::new(dir.path(), app.addr)
        .with_tls(&pki, false)
        .start()
        .await;
    let config = tls_client_config(&pki, false);

    let reply = get_tls(
        config,
        true,
        sidecar.inbound_addr(),
        "/orders?page=2",
        Some(&signer().token()),
    )
    .await
    .unwrap();

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.version, Version::HTTP_2);
    assert_eq!(reply.header("x-app"), Some("yes"));
    let requests = app.requests();
    assert_eq!(requests[0].version, Version::HTTP_11);
    assert_eq!(requests[0].uri, "/orders?page=2");
    assert_eq!(
        requests[0].one("host"),
        format!("localhost:{}", sidecar.inbound_addr().port())
    );
    assert_eq!(requests[0].one("x-forwarded-proto"), "https");
}

#[tokio::test]
async fn mutual_tls_requires_client_certificate() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let sidecar = Spec::new(dir.path(), app.addr)
        .with_tls(&pki, true)
        .start()
        .await;
    let token = signer().token();

    let without = tls_client_config(&pki, false);
    let result = get_tls(
        without,
        false,
        sidecar.inbound_addr(),
        "/orders",
        Some(&token),
    )
    .await;
    assert!(
        result.is_err(),
        "a client without a certificate got {result:?}"
    );
    assert!(app.requests().is_empty());

    let with = tls_client_config(&pki, true);
    let reply = get_tls(with, false, sidecar.inbound_addr(), "/orders", Some(&token))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(app.requests().len(), 1);
}

#[tokio::test]
async fn app_down_gets_502_and_metric() {
    let dir = tempfile::tempdir().unwrap();
    let closed_port = common::free_port().await;
    let spec = Spec::new(dir.path(), ([127, 0, 0, 1], closed_port).into());
    let sidecar = spec.start().await;

    let reply = get(sidecar.inbound_addr(), "/orders", Some(&signer().token()))
        .await
        .unwrap();

    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.json()["error"], "upstream_unavailable");
    let text = metrics_text(sidecar.admin_addr()).await;
    assert_eq!(
        metric(
            &text,
            r#"portcullis_upstream_errors_total{direction="inbound",kind="connect"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"portcullis_requests_total{direction="inbound",status="502"}"#
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn slow_app_gets_504() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new(dir.path(), app.addr);
    spec.upstream_timeout_secs = 1;
    let sidecar = spec.start().await;

    let reply = get(sidecar.inbound_addr(), "/slow", Some(&signer().token()))
        .await
        .unwrap();
    app.release();

    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.json()["error"], "upstream_timeout");
    let text = metrics_text(sidecar.admin_addr()).await;
    assert_eq!(
        metric(
            &text,
            r#"portcullis_upstream_errors_total{direction="inbound",kind="timeout"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn request_body_streams_to_app() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;
    let body = "x".repeat(256 * 1024);

    let request = http::Request::post(format!("http://{}/orders", sidecar.inbound_addr()))
        .header("authorization", format!("Bearer {}", signer().token()))
        .header("content-type", "text/plain")
        .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
        .unwrap();
    let reply = common::send(request).await.unwrap();

    assert_eq!(reply.status, StatusCode::OK);
    let requests = app.requests();
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].body.len(), body.len());
    assert_eq!(requests[0].one("content-type"), "text/plain");
}

#[tokio::test]
async fn shutdown_drains_in_flight_request() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;
    let inbound = sidecar.inbound_addr();
    let token = signer().token();

    let in_flight = tokio::spawn(async move { get(inbound, "/slow", Some(&token)).await });
    app.wait_for_requests(1).await;
    let shutdown = tokio::spawn(sidecar.shutdown());

    // Once the listener is closed the drain has begun. Only then may the app respond.
    let deadline = tokio::time::Instant::now() + common::WAIT_LIMIT;
    while tokio::net::TcpStream::connect(inbound).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.release();

    let reply = in_flight.await.unwrap().unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    shutdown.await.unwrap();
}

#[tokio::test]
async fn h2c_prior_knowledge_accepted() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;
    let uri = "http://orders.test/orders?id=9";

    let reply = common::get_h2c(sidecar.inbound_addr(), uri, Some(&signer().token())).await;

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.version, Version::HTTP_2);
    let requests = app.requests();
    assert_eq!(requests[0].version, Version::HTTP_11);
    assert_eq!(requests[0].uri, "/orders?id=9");
    assert_eq!(requests[0].one("host"), "orders.test");
}

#[tokio::test]
async fn shutdown_cuts_requests_after_grace() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new(dir.path(), app.addr);
    spec.shutdown_grace_secs = 1;
    let sidecar = spec.start().await;
    let inbound = sidecar.inbound_addr();
    let token = signer().token();

    let in_flight = tokio::spawn(async move { get(inbound, "/slow", Some(&token)).await });
    app.wait_for_requests(1).await;
    // The app never responds, so the request is still running when the grace period ends.
    sidecar.shutdown().await;

    let result = in_flight.await.unwrap();
    assert!(result.is_err(), "the cut request got {result:?}");
    assert!(tokio::net::TcpStream::connect(inbound).await.is_err());
    app.release();
}
