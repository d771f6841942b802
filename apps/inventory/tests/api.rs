//! The inventory HTTP API, served in-process on 127.0.0.1 port 0 with a temporary database.

use std::net::{Ipv4Addr, SocketAddr};

use apps_common::test_client::{empty_request, json_request, send, TestResponse};
use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, StatusCode};
use inventory_app::{InventoryConfig, RunningApp};
use serde_json::json;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start_in(dir: &TempDir) -> RunningApp {
    let config = InventoryConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        db_path: dir.path().join("data").join("inventory.db"),
    };
    inventory_app::start(config).await.unwrap()
}

async fn start_temp() -> (TempDir, RunningApp) {
    let dir = tempfile::tempdir().unwrap();
    let app = start_in(&dir).await;
    (dir, app)
}

async fn put_inventory(app: &RunningApp, body: &str) -> TestResponse {
    send(
        app.local_addr(),
        json_request(Method::PUT, "/inventory", body),
    )
    .await
}

async fn stock_of(app: &RunningApp, code: &str) -> i64 {
    let response = send(
        app.local_addr(),
        empty_request(Method::GET, &format!("/inventory/{code}")),
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "GET /inventory/{code}");
    response.json()["qty"].as_i64().unwrap()
}

async fn all_stock(app: &RunningApp) -> Vec<i64> {
    let mut levels = Vec::new();
    for code in ["101", "102", "103", "104", "105"] {
        levels.push(stock_of(app, code).await);
    }
    levels
}

#[tokio::test]
async fn get_returns_seeded_level() {
    let (_dir, app) = start_temp().await;

    let response = send(
        app.local_addr(),
        empty_request(Method::GET, "/inventory/101"),
    )
    .await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.headers[CONTENT_TYPE], "application/json");
    assert_eq!(response.json(), json!({"code": "101", "qty": 9999}));
    assert_eq!(all_stock(&app).await, vec![9999, 9999, 9999, 100, 2]);
}

#[tokio::test]
async fn get_unknown_code_is_404() {
    let (_dir, app) = start_temp().await;

    let response = send(
        app.local_addr(),
        empty_request(Method::GET, "/inventory/999"),
    )
    .await;

    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.json()["error"], "not_found");
    assert!(
        response.detail().contains("\"999\""),
        "{}",
        response.detail()
    );
}

#[tokio::test]
async fn put_takes_book_order() {
    let (_dir, app) = start_temp().await;

    let response = put_inventory(&app, r#"[{"code":"101","qty":1},{"code":"103","qty":5}]"#).await;

    assert_eq!(response.status, StatusCode::NO_CONTENT);
    assert!(response.body.is_empty());
    assert_eq!(all_stock(&app).await, vec![9998, 9999, 9994, 100, 2]);
}

#[tokio::test]
async fn put_short_item_is_409_and_takes_nothing() {
    let (_dir, app) = start_temp().await;
    let before = all_stock(&app).await;

    let response = put_inventory(
        &app,
        r#"[{"code":"101","qty":1},{"code":"103","qty":10000},{"code":"105","qty":3}]"#,
    )
    .await;

    assert_eq!(response.status, StatusCode::CONFLICT);
    let body = response.json();
    assert_eq!(body["error"], "insufficient_stock");
    assert_eq!(body["code"], "103");
    assert_eq!(body["requested"], 10000);
    assert_eq!(body["available"], 9999);
    assert!(body["detail"].as_str().unwrap().contains("103"));
    assert_eq!(all_stock(&app).await, before);
}

#[tokio::test]
async fn put_invalid_bodies_are_400_and_take_nothing() {
    let (_dir, app) = start_temp().await;
    let before = all_stock(&app).await;
    let cases = [
        ("[]", "items must contain at least one item"),
        ("[{", "request body is not valid JSON"),
        (r#"[{"qty":1}]"#, "items[0].code is missing"),
        (
            r#"[{"code":101,"qty":1}]"#,
            "items[0].code must be a non-empty string",
        ),
        (
            r#"[{"code":"101","qty":1},{"code":"999","qty":1}]"#,
            "items[1].code \"999\" is not an item this inventory stocks",
        ),
        (
            r#"[{"code":"101","qty":0}]"#,
            "items[0].qty must be a positive integer",
        ),
        (
            r#"[{"code":"101","qty":-1}]"#,
            "items[0].qty must be a positive integer",
        ),
        (
            r#"[{"code":"101","qty":2.5}]"#,
            "items[0].qty must be a positive integer",
        ),
        (r#"[{"code":"101"}]"#, "items[0].qty is missing"),
        (
            r#"[{"code":"101","qty":1},{"code":"101","qty":1}]"#,
            "items must list each code once, but code \"101\" appears at [0] and [1]",
        ),
    ];

    for (body, expected) in cases {
        let response = put_inventory(&app, body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "body {body}");
        assert!(
            response.detail().starts_with(expected),
            "body {body} gave {:?}",
            response.detail()
        );
    }
    assert_eq!(all_stock(&app).await, before);
}

#[tokio::test]
async fn put_unknown_code_has_its_own_error() {
    let (_dir, app) = start_temp().await;

    let response = put_inventory(&app, r#"[{"code":"999","qty":1}]"#).await;

    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json()["error"], "unknown_item");
}

#[tokio::test]
async fn put_non_json_content_type_is_415() {
    let (_dir, app) = start_temp().await;
    let mut request = json_request(Method::PUT, "/inventory", r#"[{"code":"101","qty":1}]"#);
    request
        .headers_mut()
        .insert(CONTENT_TYPE, "text/plain".parse().unwrap());

    let response = send(app.local_addr(), request).await;

    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(response.json()["error"], "unsupported_media_type");
    assert_eq!(stock_of(&app, "101").await, 9999);
}

#[tokio::test]
async fn put_large_body_is_413() {
    let (_dir, app) = start_temp().await;
    let padding = " ".repeat(70 * 1024);
    let body = format!(r#"[{{"code":"101","qty":1}}{padding}]"#);

    let response = put_inventory(&app, &body).await;

    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.json()["error"], "payload_too_large");
    assert_eq!(stock_of(&app, "101").await, 9999);
}

#[tokio::test]
async fn put_large_chunked_body_is_413() {
    let (_dir, app) = start_temp().await;
    let mut stream = TcpStream::connect(app.local_addr()).await.unwrap();
    let head = "PUT /inventory HTTP/1.1\r\nHost: inventory\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();

    // Without Content-Length, the limit applies while the body streams in. The server may
    // respond and close before every chunk is written, so write errors are expected.
    let chunk = format!("{:x}\r\n{}\r\n", 8 * 1024, " ".repeat(8 * 1024));
    for _ in 0..10 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;

    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    assert!(response.contains("payload_too_large"), "{response}");
    assert_eq!(stock_of(&app, "101").await, 9999);
}

#[tokio::test]
async fn unknown_path_is_json_404() {
    let (_dir, app) = start_temp().await;

    for path in ["/", "/orders", "/inventory/", "/inventory/101/extra"] {
        let response = send(app.local_addr(), empty_request(Method::GET, path)).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "path {path}");
        assert_eq!(response.json()["error"], "not_found", "path {path}");
    }
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let (_dir, app) = start_temp().await;
    let cases = [
        (Method::GET, "/inventory", "PUT"),
        (Method::POST, "/inventory", "PUT"),
        (Method::PUT, "/inventory/101", "GET"),
        (Method::DELETE, "/inventory/101", "GET"),
    ];

    for (method, path, allow) in cases {
        let response = send(app.local_addr(), empty_request(method.clone(), path)).await;
        assert_eq!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers[ALLOW], allow, "{method} {path}");
        assert_eq!(response.json()["error"], "method_not_allowed");
    }
}

#[tokio::test]
async fn restart_keeps_stock_and_skips_seed() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_in(&dir).await;
    let response = put_inventory(&app, r#"[{"code":"104","qty":30}]"#).await;
    assert_eq!(response.status, StatusCode::NO_CONTENT);
    app.shutdown().await;

    let restarted = start_in(&dir).await;

    assert_eq!(stock_of(&restarted, "104").await, 70);
}

#[tokio::test]
async fn shutdown_closes_listener() {
    let (_dir, app) = start_temp().await;
    let addr = app.local_addr();

    app.shutdown().await;

    let connected = TcpStream::connect(addr).await;
    assert!(
        connected.is_err(),
        "{addr} still accepts connections after shutdown"
    );
}
