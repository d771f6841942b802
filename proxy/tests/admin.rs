//! The admin listener: liveness, readiness while the JWKS server is down and once it is up,
//! and the Prometheus metrics.

mod common;

use std::time::Duration;

use http::StatusCode;
use tokio::net::TcpListener;

use common::{get, metric, metrics_text, serve_jwks, signer, wait_ready, App, Spec};

#[tokio::test]
async fn readyz_follows_jwks_availability() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let jwks_port = common::free_port().await;
    let mut spec = Spec::new(dir.path(), app.addr);
    spec.jwks_uri = Some(format!("http://127.0.0.1:{jwks_port}/jwks.json"));
    let sidecar = spec.start_unready().await;

    let health = get(sidecar.admin_addr(), "/healthz", None).await.unwrap();
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body.trim(), "ok");

    let ready = get(sidecar.admin_addr(), "/readyz", None).await.unwrap();
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let reason = ready.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("keys"), "{reason}");

    // A token that may well be valid gets 503 with Retry-After, never 401, and is not
    // forwarded.
    let reply = get(sidecar.inbound_addr(), "/orders", Some(&signer().token()))
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert!(reply.header("retry-after").is_some());
    assert!(app.requests().is_empty());

    let listener = TcpListener::bind(("127.0.0.1", jwks_port))
        .await
        .expect("the reserved JWKS port is still free");
    serve_jwks(listener);
    wait_ready(sidecar.admin_addr()).await;

    let reply = get(sidecar.inbound_addr(), "/orders", Some(&signer().token()))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(app.requests().len(), 1);
}

#[tokio::test]
async fn readyz_503_while_draining() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;
    let admin = sidecar.admin_addr();
    let inbound = sidecar.inbound_addr();

    // Holds the inbound drain open so the admin listener is still serving.
    let token = signer().token();
    let in_flight = tokio::spawn(async move { get(inbound, "/slow", Some(&token)).await });
    app.wait_for_requests(1).await;
    let shutdown = tokio::spawn(sidecar.shutdown());

    let deadline = tokio::time::Instant::now() + common::WAIT_LIMIT;
    loop {
        let ready = get(admin, "/readyz", None).await.unwrap();
        if ready.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(ready.json()["reason"], "shutting down");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "readyz stayed 200");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    app.release();
    assert_eq!(in_flight.await.unwrap().unwrap().status, StatusCode::OK);
    shutdown.await.unwrap();
}

#[tokio::test]
async fn metrics_count_requests() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;
    let inbound = sidecar.inbound_addr();

    assert_eq!(
        get(inbound, "/orders", Some(&signer().token()))
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(inbound, "/orders", Some(&signer().token()))
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(inbound, "/orders", None).await.unwrap().status,
        StatusCode::UNAUTHORIZED
    );

    let reply = get(sidecar.admin_addr(), "/metrics", None).await.unwrap();
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = metrics_text(sidecar.admin_addr()).await;
    assert_eq!(
        metric(
            &text,
            r#"portcullis_requests_total{direction="inbound",status="200"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"portcullis_requests_total{direction="inbound",status="401"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"portcullis_request_duration_seconds_count{direction="inbound"}"#
        ),
        Some(3.0),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_admin_path_404() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;

    let reply = get(sidecar.admin_addr(), "/debug", None).await.unwrap();

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let request = http::Request::post(format!("http://{}/healthz", sidecar.admin_addr()))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let reply = common::send(request).await.unwrap();
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}
