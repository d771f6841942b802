//! The sidecar's side of the app connection: HTTP/2 to the app when configured, and the one
//! retry of a refused connection, which only idempotent requests without a body get.

mod common;

use http::{StatusCode, Version};

use common::raw::{exchange, EdgeApp, SidecarProcess};
use common::{free_port, raw_request, signer, wait_ready, Spec};

const BINARY: &str = env!("CARGO_BIN_EXE_portcullis");

#[tokio::test]
async fn h2c_to_app_when_configured() {
    let app = EdgeApp::start_h2c().await;
    let dir = tempfile::tempdir().unwrap();
    let text = Spec::new(dir.path(), app.addr)
        .to_toml()
        .replace("[inbound]\n", "[inbound]\nupstream_http2 = true\n");
    let config = portcullis::config::Config::from_toml(&text, dir.path()).unwrap();
    let sidecar = portcullis::start(config).await.unwrap();
    wait_ready(sidecar.admin_addr()).await;

    let first = raw_request(
        sidecar.inbound_addr(),
        "GET /public/a HTTP/1.1\r\nHost: orders\r\n",
    )
    .await;
    let second = raw_request(
        sidecar.inbound_addr(),
        "GET /public/b HTTP/1.1\r\nHost: orders\r\n",
    )
    .await;

    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(second.status, 200, "{}", second.body);
    let requests = app.requests();
    assert!(requests.iter().all(|r| r.version == Version::HTTP_2));
    assert_eq!(app.connections(), 1, "HTTP/2 requests share one connection");
}

#[tokio::test]
async fn refused_connection_retried_only_when_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let closed_app = format!("127.0.0.1:{}", free_port().await);
    let mut spec = Spec::new(dir.path(), closed_app.parse().unwrap());
    let inbound = format!("127.0.0.1:{}", free_port().await);
    let admin = format!("127.0.0.1:{}", free_port().await);
    spec.inbound_listen = inbound.clone();
    spec.admin_listen = admin.clone();
    let config = spec.write("sidecar.toml");
    let sidecar = SidecarProcess::spawn(
        BINARY,
        dir.path(),
        "sidecar",
        &config,
        "info,portcullis::upstream=debug",
    );
    wait_ready(admin.parse().unwrap()).await;
    let inbound = inbound.parse().unwrap();
    let auth = format!("Authorization: Bearer {}\r\n", signer().token());

    let get = raw_request(
        inbound,
        &format!("GET /orders HTTP/1.1\r\nHost: orders\r\n{auth}"),
    )
    .await;
    sidecar.wait_for_log("retrying once", 1).await;
    let post = raw_request(
        inbound,
        &format!("POST /orders HTTP/1.1\r\nHost: orders\r\nContent-Length: 0\r\n{auth}"),
    )
    .await;
    let put_with_body = exchange(
        inbound,
        format!(
            "PUT /orders HTTP/1.1\r\nHost: orders\r\n{auth}Content-Length: 2\r\nConnection: close\r\n\r\nhi"
        )
        .as_bytes(),
    )
    .await;

    assert_eq!(get.status, StatusCode::BAD_GATEWAY.as_u16());
    assert_eq!(post.status, StatusCode::BAD_GATEWAY.as_u16());
    assert_eq!(put_with_body[0].status, StatusCode::BAD_GATEWAY.as_u16());
    sidecar
        .wait_for_log("forwarding to the app failed", 3)
        .await;
    let log = sidecar.log();
    assert_eq!(log.matches("retrying once").count(), 1, "{log}");
}
