use apps_common::json::{parse_json, Object};
use serde_json::{json, Value};

use super::*;

/// The order body from *Microservices Security in Action*, unchanged.
const BOOK_ORDER: &str = r#"{"customer_id":"101021","payment_method":{"card_type":"VISA","expiration":"01/22","name":"John Doe","billing_address":"201, 1st Street, San Jose, CA"},"items":[{"code":"101","qty":1},{"code":"103","qty":5}],"shipping_address":"201, 1st Street, San Jose, CA"}"#;

fn parse_order(body: &str) -> Result<OrderDetails, String> {
    parse_json::<Object<OrderDetails>>(body.as_bytes(), "request body")
        .map(|Object(details)| details)
        .map_err(|error| error.to_string())
}

/// Returns the book's order with the field at `pointer` (a JSON Pointer) replaced by
/// `value`, or removed when `value` is `None`.
fn book_order_with(pointer: &str, value: Option<Value>) -> String {
    let mut order: Value = serde_json::from_str(BOOK_ORDER).unwrap();
    let (parent, field) = pointer.rsplit_once('/').unwrap();
    let parent = order.pointer_mut(parent).unwrap();
    match (value, parent) {
        (Some(value), Value::Object(map)) => {
            map.insert(field.to_owned(), value);
        }
        (None, Value::Object(map)) => {
            map.remove(field);
        }
        (Some(value), Value::Array(list)) => list[field.parse::<usize>().unwrap()] = value,
        (None, Value::Array(list)) => {
            list.remove(field.parse::<usize>().unwrap());
        }
        (_, other) => panic!("{pointer} has a scalar parent {other}"),
    }
    order.to_string()
}

#[test]
fn book_order_parses() {
    let order = parse_order(BOOK_ORDER).unwrap();

    assert_eq!(order.customer_id.as_str(), "101021");
    assert_eq!(order.payment_method.card_type.as_str(), "VISA");
    assert_eq!(order.payment_method.expiration.as_str(), "01/22");
    assert_eq!(order.payment_method.name.as_str(), "John Doe");
    assert_eq!(order.items.len(), 2);
    assert_eq!(
        order.shipping_address.as_str(),
        "201, 1st Street, San Jose, CA"
    );
}

#[test]
fn order_round_trips_to_same_json() {
    let order = parse_order(BOOK_ORDER).unwrap();

    let json: Value = serde_json::to_value(&order).unwrap();

    assert_eq!(json, serde_json::from_str::<Value>(BOOK_ORDER).unwrap());
}

#[test]
fn unknown_fields_are_ignored() {
    let body = book_order_with("/gift_wrap", Some(json!(true)));

    assert!(parse_order(&body).is_ok());
}

#[test]
fn invalid_orders_name_the_field() {
    let cases = [
        ("/customer_id", None, "customer_id is missing"),
        (
            "/customer_id",
            Some(json!("")),
            "customer_id must be a non-empty string",
        ),
        (
            "/customer_id",
            Some(json!(101021)),
            "customer_id must be a non-empty string",
        ),
        (
            "/payment_method/card_type",
            None,
            "payment_method.card_type is missing",
        ),
        (
            "/payment_method/name",
            Some(json!(null)),
            "payment_method.name must be a non-empty string",
        ),
        (
            "/payment_method/billing_address",
            None,
            "payment_method.billing_address is missing",
        ),
        (
            "/payment_method/expiration",
            Some(json!("13/22")),
            "payment_method.expiration must have the form MM/YY with a month from 01 to 12",
        ),
        (
            "/payment_method/expiration",
            Some(json!("1/22")),
            "payment_method.expiration must have the form MM/YY with a month from 01 to 12",
        ),
        (
            "/payment_method/expiration",
            Some(json!("01/2022")),
            "payment_method.expiration must have the form MM/YY with a month from 01 to 12",
        ),
        (
            "/payment_method/expiration",
            Some(json!(122)),
            "payment_method.expiration must have the form MM/YY with a month from 01 to 12",
        ),
        (
            "/payment_method",
            Some(json!("VISA")),
            "payment_method is invalid: invalid type: string \"VISA\", expected a JSON object",
        ),
        (
            "/payment_method",
            Some(json!(["VISA", "01/22", "John Doe", "201, 1st Street"])),
            "payment_method is invalid: invalid type: sequence, expected a JSON object",
        ),
        ("/items", None, "items is missing"),
        (
            "/items",
            Some(json!([])),
            "items must contain at least one item",
        ),
        (
            "/items/1/qty",
            Some(json!(0)),
            "items[1].qty must be a positive integer",
        ),
        (
            "/items/1/qty",
            Some(json!("5")),
            "items[1].qty must be a positive integer",
        ),
        ("/items/0/code", None, "items[0].code is missing"),
        (
            "/items/1/code",
            Some(json!("101")),
            "items must list each code once, but code \"101\" appears at [0] and [1]",
        ),
        (
            "/shipping_address",
            Some(json!("")),
            "shipping_address must be a non-empty string",
        ),
    ];

    for (pointer, value, expected) in cases {
        let body = book_order_with(pointer, value.clone());
        assert_eq!(
            parse_order(&body).unwrap_err(),
            expected,
            "{pointer} = {value:?}"
        );
    }
}

#[test]
fn non_object_body_is_rejected() {
    let error = parse_order("[1, 2]").unwrap_err();

    assert_eq!(
        error,
        "request body is invalid: invalid type: sequence, expected a JSON object"
    );
}

#[test]
fn expiration_accepts_past_dates() {
    for text in ["01/22", "12/99", "06/00"] {
        assert!(CardExpiration::new(text.to_owned()).is_some(), "{text}");
    }
    for text in ["00/22", "13/22", "ab/cd", "01-22", "", "01/22 "] {
        assert!(CardExpiration::new(text.to_owned()).is_none(), "{text}");
    }
}

#[test]
fn status_serializes_as_created() {
    assert_eq!(
        serde_json::to_value(OrderStatus::Created).unwrap(),
        json!("created")
    );
}
