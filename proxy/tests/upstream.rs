//! The sidecar's side of the app connection: HTTP/2 to the app when configured, the one
//! retry of a refused connection, which only idempotent requests without a body get, and the
//! connect timeout, each with its counter in `/metrics`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use http::{StatusCode, Version};
use tokio::net::{TcpSocket, TcpStream};

use common::raw::{exchange, EdgeApp, SidecarProcess};
use common::{free_port, metric_value, raw_request, signer, wait_ready, Spec};

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
    let admin: SocketAddr = admin.parse().unwrap();
    let retries = metric_value(
        admin,
        r#"portcullis_upstream_retries_total{direction="inbound"}"#,
    )
    .await;
    let failures = metric_value(
        admin,
        r#"portcullis_upstream_errors_total{direction="inbound",kind="connect"}"#,
    )
    .await;
    assert_eq!(retries, 1.0);
    assert_eq!(failures, 3.0);
}

/// Binds a loopback listener with a backlog of 1 that never accepts, and opens client
/// connections until the kernel stops completing handshakes for it. On Linux a listener
/// whose accept queue is full drops further SYNs, so a new connection to it can only time
/// out. Returns the address with the connections that fill the queue, which must stay open.
async fn full_listener() -> (SocketAddr, tokio::net::TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => queued.push(stream),
            Ok(Err(err)) => panic!("connecting to the full listener failed: {err}"),
            Err(_elapsed) => return (addr, listener, queued),
        }
    }
    panic!(
        "the kernel completed {} handshakes for a listener with a backlog of 1; \
         the connect timeout cannot be provoked on this machine",
        queued.len()
    );
}

#[tokio::test]
async fn connect_timeout_gets_504() {
    let (app_addr, _listener, _queued) = full_listener().await;
    let dir = tempfile::tempdir().unwrap();
    let text = Spec::new(dir.path(), app_addr).to_toml().replace(
        "[inbound]\n",
        "[inbound]\nupstream_connect_timeout_secs = 1\n",
    );
    let config = portcullis::config::Config::from_toml(&text, dir.path()).unwrap();
    let sidecar = portcullis::start(config).await.unwrap();
    wait_ready(sidecar.admin_addr()).await;

    let head = format!(
        "GET /orders HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer {}\r\n",
        signer().token()
    );
    // A response within 10 seconds to a 1-second timeout shows the request did not hang.
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        raw_request(sidecar.inbound_addr(), &head),
    )
    .await
    .expect("no response within 10 seconds");

    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT.as_u16());
    assert!(
        reply.body.contains("upstream_connect_timeout"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("upstream_connect_timeout_secs = 1"),
        "{}",
        reply.body
    );
    let admin = sidecar.admin_addr();
    let timeouts = metric_value(
        admin,
        r#"portcullis_upstream_errors_total{direction="inbound",kind="connect_timeout"}"#,
    )
    .await;
    let retries = metric_value(
        admin,
        r#"portcullis_upstream_retries_total{direction="inbound"}"#,
    )
    .await;
    assert_eq!(timeouts, 1.0);
    assert_eq!(retries, 0.0, "a connect timeout is not retried");
}

#[tokio::test]
async fn app_connections_capped_and_queued_requests_served() {
    let app = EdgeApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = Spec::new(dir.path(), app.addr)
        .to_toml()
        .replace("[inbound]\n", "[inbound]\nupstream_max_connections = 2\n");
    let config = portcullis::config::Config::from_toml(&text, dir.path()).unwrap();
    let sidecar = portcullis::start(config).await.unwrap();
    wait_ready(sidecar.admin_addr()).await;

    let token = signer().token();
    let inbound = sidecar.inbound_addr();
    let requests: Vec<_> = (0..6)
        .map(|index| {
            let head = format!(
                "GET /slow/{index} HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer {token}\r\n"
            );
            tokio::spawn(async move { raw_request(inbound, &head).await })
        })
        .collect();

    // Two requests hold the two connections; the other four wait in the sidecar.
    app.wait_for_requests(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.requests().len(), 2, "only two requests reach the app");
    assert_eq!(app.connections(), 2, "the app has two connections");

    app.release();
    for request in requests {
        let reply = request.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(
        app.requests().len(),
        6,
        "every queued request was forwarded"
    );
    assert_eq!(
        app.connections(),
        2,
        "queued requests reused the two connections"
    );
}
