//! The order API against a real inventory app. `outbound` points straight at the
//! inventory, which ignores the `Host` header.

mod support;

use apps_common::test_client::{empty_request, json_request, send};
use http::header::{ALLOW, CONTENT_TYPE, LOCATION};
use http::{Method, StatusCode};
use serde_json::{json, Value};

use support::{InventoryApp, OrderApp, BOOK_ORDER};

#[tokio::test]
async fn book_order_is_created() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;

    let response = orders
        .post_order(
            BOOK_ORDER,
            &[
                ("authorization", "Bearer token"),
                ("x-portcullis-subject", "peter"),
            ],
        )
        .await;

    assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
    assert_eq!(response.headers[CONTENT_TYPE], "application/json");
    let order = response.json();
    let order_id = order["order_id"].as_str().unwrap();
    assert_eq!(
        response.headers[LOCATION],
        format!("/orders/{order_id}").as_str()
    );
    assert_eq!(order["created_by"], "peter");
    assert_eq!(order["status"], "created");
    let book: Value = serde_json::from_str(BOOK_ORDER).unwrap();
    for field in ["customer_id", "payment_method", "items", "shipping_address"] {
        assert_eq!(order[field], book[field], "field {field}");
    }
    let created_at = order["created_at"].as_str().unwrap();
    assert_eq!(
        created_at.len(),
        "2024-01-01T00:00:00.000Z".len(),
        "{created_at}"
    );
    assert!(created_at.ends_with('Z'), "{created_at}");
    assert_eq!(inventory.stock_of("101").await, 9998);
    assert_eq!(inventory.stock_of("103").await, 9994);
    assert_eq!(orders.stored_rows(), (1, 2));
}

#[tokio::test]
async fn order_without_subject_has_null_creator() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;

    let response = orders.post_order(BOOK_ORDER, &[]).await;

    assert_eq!(response.status, StatusCode::CREATED);
    assert_eq!(response.json()["created_by"], Value::Null);
}

#[tokio::test]
async fn get_and_status_return_stored_order() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;
    let created = orders
        .post_order(BOOK_ORDER, &[("x-portcullis-subject", "peter")])
        .await
        .json();
    let location = format!("/orders/{}", created["order_id"].as_str().unwrap());

    let fetched = send(orders.addr(), empty_request(Method::GET, &location)).await;
    let status = send(
        orders.addr(),
        empty_request(Method::GET, &format!("{location}/status")),
    )
    .await;

    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.json(), created);
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(
        status.json(),
        json!({"order_id": created["order_id"], "status": "created"})
    );
}

#[tokio::test]
async fn repeated_book_orders_get_distinct_ids() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;

    let mut ids = Vec::new();
    for _ in 0..3 {
        let response = orders.post_order(BOOK_ORDER, &[]).await;
        assert_eq!(response.status, StatusCode::CREATED);
        ids.push(response.json()["order_id"].as_str().unwrap().to_owned());
    }

    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert_eq!(inventory.stock_of("103").await, 9999 - 15);
    assert_eq!(orders.stored_rows(), (3, 6));
}

#[tokio::test]
async fn short_stock_is_409_and_stores_nothing() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;
    let body = BOOK_ORDER.replace(r#"{"code":"103","qty":5}"#, r#"{"code":"103","qty":10000}"#);

    let response = orders.post_order(&body, &[]).await;

    assert_eq!(response.status, StatusCode::CONFLICT);
    let reason = response.json();
    assert_eq!(reason["error"], "insufficient_stock");
    assert_eq!(reason["code"], "103");
    assert_eq!(reason["requested"], 10000);
    assert_eq!(reason["available"], 9999);
    assert_eq!(inventory.stock_of("101").await, 9999);
    assert_eq!(inventory.stock_of("103").await, 9999);
    assert_eq!(orders.stored_rows(), (0, 0));
}

#[tokio::test]
async fn unknown_item_is_502_with_inventory_reason() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;
    let body = BOOK_ORDER.replace(r#""code":"103""#, r#""code":"999""#);

    let response = orders.post_order(&body, &[]).await;

    assert_eq!(response.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.detail(),
        "inventory returned 400: items[1].code \"999\" is not an item this inventory stocks"
    );
    assert_eq!(orders.stored_rows(), (0, 0));
}

#[tokio::test]
async fn invalid_orders_name_the_field() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;
    let cases = [
        (
            BOOK_ORDER.replace(r#""qty":5"#, r#""qty":0"#),
            "items[1].qty must be a positive integer",
        ),
        (
            BOOK_ORDER.replace(r#""card_type":"VISA","#, ""),
            "payment_method.card_type is missing",
        ),
        (
            BOOK_ORDER.replace("01/22", "2022-01"),
            "payment_method.expiration must have the form MM/YY with a month from 01 to 12",
        ),
        ("{".to_owned(), "request body is not valid JSON"),
    ];

    for (body, expected) in cases {
        let response = orders.post_order(&body, &[]).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{expected}");
        assert_eq!(response.json()["error"], "invalid_request");
        assert!(
            response.detail().starts_with(expected),
            "got {:?}",
            response.detail()
        );
    }
    assert_eq!(inventory.stock_of("101").await, 9999);
    assert_eq!(orders.stored_rows(), (0, 0));
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;
    let mut request = json_request(Method::POST, "/orders", BOOK_ORDER);
    request.headers_mut().insert(
        CONTENT_TYPE,
        "application/x-www-form-urlencoded".parse().unwrap(),
    );

    let response = send(orders.addr(), request).await;

    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(response.json()["error"], "unsupported_media_type");
    assert_eq!(orders.stored_rows(), (0, 0));
}

#[tokio::test]
async fn large_body_is_413() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;
    let body = BOOK_ORDER.replace("John Doe", &"x".repeat(70 * 1024));

    let response = orders.post_order(&body, &[]).await;

    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.json()["error"], "payload_too_large");
}

#[tokio::test]
async fn unknown_order_is_404() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;
    let paths = [
        "/orders/1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b",
        "/orders/1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b/status",
        "/orders/not-a-uuid",
        "/orders/not-a-uuid/status",
    ];

    for path in paths {
        let response = send(orders.addr(), empty_request(Method::GET, path)).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.json()["error"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn unknown_path_is_json_404() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;

    for path in ["/", "/order", "/orders/", "/orders/x/items", "/inventory"] {
        let response = send(orders.addr(), empty_request(Method::GET, path)).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.json()["error"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let inventory = InventoryApp::start().await;
    let orders = OrderApp::start(inventory.addr()).await;
    let cases = [
        (Method::GET, "/orders", "POST"),
        (Method::PUT, "/orders", "POST"),
        (
            Method::POST,
            "/orders/1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b",
            "GET",
        ),
        (
            Method::DELETE,
            "/orders/1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b/status",
            "GET",
        ),
    ];

    for (method, path, allow) in cases {
        let response = send(orders.addr(), empty_request(method.clone(), path)).await;
        assert_eq!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers[ALLOW], allow, "{method} {path}");
    }
}
