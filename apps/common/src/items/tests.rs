use super::*;
use crate::json::{parse_json, JsonError};

fn parse_items(body: &str) -> Result<ItemList, String> {
    parse_json::<ItemList>(body.as_bytes(), "items").map_err(|error| error.to_string())
}

#[test]
fn item_list_accepts_book_items() {
    let items = parse_items(r#"[{"code":"101","qty":1},{"code":"103","qty":5}]"#).unwrap();

    assert_eq!(items.len(), 2);
    assert_eq!(items.as_slice()[0].code.as_str(), "101");
    assert_eq!(items.as_slice()[0].qty.get(), 1);
    assert_eq!(items.as_slice()[1].code.as_str(), "103");
    assert_eq!(items.as_slice()[1].qty.get(), 5);
}

#[test]
fn item_list_ignores_unknown_fields() {
    let items = parse_items(r#"[{"code":"101","qty":1,"note":"gift"}]"#).unwrap();

    assert_eq!(items.len(), 1);
}

#[test]
fn item_list_serializes_as_array() {
    let items = parse_items(r#"[{"code":"101","qty":1}]"#).unwrap();

    let json = serde_json::to_string(&items).unwrap();

    assert_eq!(json, r#"[{"code":"101","qty":1}]"#);
}

#[test]
fn item_list_rejection_messages() {
    let cases = [
        ("[]", "items must contain at least one item"),
        (r#"{"code":"101","qty":1}"#, "items is invalid: invalid type: map, expected an array of items such as [{\"code\": \"101\", \"qty\": 1}]"),
        (r#"[{"qty":1}]"#, "items[0].code is missing"),
        (r#"[{"code":"101"}]"#, "items[0].qty is missing"),
        (r#"[{"code":101,"qty":1}]"#, "items[0].code must be a non-empty string"),
        (r#"[{"code":null,"qty":1}]"#, "items[0].code must be a non-empty string"),
        (r#"[{"code":"","qty":1}]"#, "items[0].code must be a non-empty string"),
        (r#"[{"code":"101","qty":1},{"code":"102","qty":0}]"#, "items[1].qty must be a positive integer"),
        (r#"[{"code":"101","qty":-3}]"#, "items[0].qty must be a positive integer"),
        (r#"[{"code":"101","qty":1.5}]"#, "items[0].qty must be a positive integer"),
        (r#"[{"code":"101","qty":1.0}]"#, "items[0].qty must be a positive integer"),
        (r#"[{"code":"101","qty":"5"}]"#, "items[0].qty must be a positive integer"),
        (r#"[{"code":"101","qty":4294967296}]"#, "items[0].qty must be at most 4294967295"),
        (r#"["101"]"#, "items[0] is invalid: invalid type: string \"101\", expected a JSON object"),
        (r#"[["101", 1]]"#, "items[0] is invalid: invalid type: sequence, expected a JSON object"),
        (
            r#"[{"code":"101","qty":1},{"code":"102","qty":1},{"code":"101","qty":2}]"#,
            "items must list each code once, but code \"101\" appears at [0] and [2]",
        ),
    ];

    for (body, expected) in cases {
        assert_eq!(parse_items(body).unwrap_err(), expected, "body: {body}");
    }
}

#[test]
fn item_list_accepts_largest_quantity() {
    let items = parse_items(r#"[{"code":"101","qty":4294967295}]"#).unwrap();

    assert_eq!(items.as_slice()[0].qty.get(), u32::MAX);
}

#[test]
fn parse_json_reports_syntax_errors() {
    let cases = ["", "[", r#"[{"code":"101","qty":1}] trailing"#, "not json"];

    for body in cases {
        let error = parse_json::<ItemList>(body.as_bytes(), "items").unwrap_err();
        assert!(
            matches!(error, JsonError::Syntax { .. }),
            "body {body:?} gave {error:?}"
        );
        assert!(error
            .to_string()
            .starts_with("request body is not valid JSON: "));
    }
}

#[test]
fn item_list_new_rejects_duplicates() {
    let item = |code: &str| StockItem {
        code: ItemCode::new(code.to_owned()).unwrap(),
        qty: Quantity::new(1).unwrap(),
    };

    let error = ItemList::new(vec![item("a"), item("a")]).unwrap_err();

    assert_eq!(
        error,
        ItemListError::DuplicateCode {
            code: "a".to_owned(),
            first: 0,
            second: 1
        }
    );
}

#[test]
fn constructors_reject_empty_values() {
    assert_eq!(ItemCode::new(String::new()), None);
    assert_eq!(Quantity::new(0), None);
    assert_eq!(ItemList::new(Vec::new()), Err(ItemListError::Empty));
}
