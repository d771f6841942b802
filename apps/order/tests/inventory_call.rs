//! The order app's call to the inventory, against a fake inventory that records each
//! request and returns a chosen status, or against an address where nothing listens.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apps_common::test_client::{json_request, send};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, StatusCode};
use order_app::OrderConfig;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use support::{
    loopback_port_zero, unused_loopback_addr, FakeBehavior, FakeInventory, OrderApp, BOOK_ORDER,
};

#[tokio::test]
async fn call_sends_only_authorization_to_inventory_host() {
    let inventory = FakeInventory::start(FakeBehavior::Respond(StatusCode::NO_CONTENT, "")).await;
    let orders = OrderApp::start(inventory.addr).await;
    let token = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwZXRlciJ9.c2lnbmF0dXJl";

    let response = orders
        .post_order(
            BOOK_ORDER,
            &[
                ("authorization", token),
                ("x-portcullis-subject", "peter"),
                ("cookie", "session=1"),
                ("x-request-note", "keep me out"),
            ],
        )
        .await;

    assert_eq!(response.status, StatusCode::CREATED);
    let requests = inventory.requests();
    assert_eq!(requests.len(), 1);
    let call = &requests[0];
    assert_eq!(call.method, Method::PUT);
    assert_eq!(call.path, "/inventory");
    assert_eq!(call.headers[AUTHORIZATION], token);
    assert_eq!(call.headers[HOST], "inventory");
    assert_eq!(call.headers[CONTENT_TYPE], "application/json");
    let forwarded: Vec<&str> = call.headers.keys().map(|name| name.as_str()).collect();
    for name in ["x-portcullis-subject", "cookie", "x-request-note"] {
        assert!(
            !call.headers.contains_key(name),
            "{name} was forwarded: {forwarded:?}"
        );
    }
    let items: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        items,
        json!([{"code": "101", "qty": 1}, {"code": "103", "qty": 5}])
    );
}

#[tokio::test]
async fn call_without_authorization_sends_none() {
    let inventory = FakeInventory::start(FakeBehavior::Respond(StatusCode::NO_CONTENT, "")).await;
    let orders = OrderApp::start(inventory.addr).await;

    let response = orders.post_order(BOOK_ORDER, &[]).await;

    assert_eq!(response.status, StatusCode::CREATED);
    assert!(!inventory.requests()[0].headers.contains_key(AUTHORIZATION));
}

#[tokio::test]
async fn any_2xx_from_inventory_creates_order() {
    let inventory = FakeInventory::start(FakeBehavior::Respond(StatusCode::OK, "{}")).await;
    let orders = OrderApp::start(inventory.addr).await;

    let response = orders.post_order(BOOK_ORDER, &[]).await;

    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(orders.stored_rows(), (1, 2));
}

#[tokio::test]
async fn nothing_listening_is_502() {
    let outbound = unused_loopback_addr().await;
    let orders = OrderApp::start(outbound).await;

    let response = orders.post_order(BOOK_ORDER, &[]).await;

    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(response.json()["error"], "inventory_failed");
    assert_eq!(
        response.detail(),
        format!("inventory unreachable at {outbound}: connection refused")
    );
    assert_eq!(orders.stored_rows(), (0, 0));
}

#[tokio::test]
async fn inventory_error_status_is_502() {
    let cases = [
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "",
            "inventory returned 500",
        ),
        (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_token","detail":"the token has expired"}"#,
            "inventory returned 401: the token has expired",
        ),
        (StatusCode::FORBIDDEN, "not json", "inventory returned 403"),
    ];

    for (status, body, expected) in cases {
        let inventory = FakeInventory::start(FakeBehavior::Respond(status, body)).await;
        let orders = OrderApp::start(inventory.addr).await;

        let response = orders.post_order(BOOK_ORDER, &[]).await;

        assert_eq!(
            response.status,
            StatusCode::BAD_GATEWAY,
            "inventory {status}"
        );
        assert_eq!(response.detail(), expected);
        assert_eq!(orders.stored_rows(), (0, 0), "inventory {status}");
    }
}

#[tokio::test]
async fn conflict_without_json_body_is_502() {
    let inventory = FakeInventory::start(FakeBehavior::Respond(StatusCode::CONFLICT, "")).await;
    let orders = OrderApp::start(inventory.addr).await;

    let response = orders.post_order(BOOK_ORDER, &[]).await;

    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.detail(),
        "inventory returned 409 with a body that is not a JSON object"
    );
    assert_eq!(orders.stored_rows(), (0, 0));
}

#[tokio::test]
async fn silent_inventory_times_out_as_502() {
    let inventory = FakeInventory::start(FakeBehavior::Hang).await;
    let timeout = Duration::from_millis(300);
    let orders = OrderApp::start_with_timeout(inventory.addr, timeout).await;

    let response = orders.post_order(BOOK_ORDER, &[]).await;

    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.detail(),
        format!(
            "inventory at {} did not respond within 300ms",
            inventory.addr
        )
    );
    assert_eq!(orders.stored_rows(), (0, 0));
}

#[tokio::test]
async fn shutdown_finishes_in_flight_order() {
    let arrived = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let inventory = FakeInventory::start(FakeBehavior::WaitForRelease {
        arrived: Arc::clone(&arrived),
        release: Arc::clone(&release),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = OrderConfig {
        listen: loopback_port_zero(),
        db_path: dir.path().join("orders.db"),
        outbound: inventory.addr,
        ..OrderConfig::default()
    };
    let app = order_app::start(config).await.unwrap();
    let addr = app.local_addr();
    let in_flight = tokio::spawn(send(
        addr,
        json_request(Method::POST, "/orders", BOOK_ORDER),
    ));
    arrived.notified().await;

    let shutdown = tokio::spawn(app.shutdown());
    wait_until_refused(addr).await;
    release.notify_one();

    let response = in_flight.await.unwrap();
    shutdown.await.unwrap();
    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(inventory.requests().len(), 1);
}

/// Waits until `addr` refuses connections, for at most 5 s.
async fn wait_until_refused(addr: SocketAddr) {
    for _ in 0..500 {
        if TcpStream::connect(addr).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{addr} still accepts connections 5 s after shutdown began");
}
