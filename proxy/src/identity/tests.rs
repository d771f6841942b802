use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

use super::*;
use crate::config::ClaimHeader;

fn token(claims: Value) -> VerifiedToken {
    let claims: Map<String, Value> = claims.as_object().expect("object").clone();
    VerifiedToken {
        issuer: "https://localhost:8443".into(),
        identity: crate::verify::IdentityText::new(
            claims.get("sub").and_then(Value::as_str),
            claims.get("client_id").and_then(Value::as_str),
            ["foo", "bar"].into_iter(),
        ),
        claims_json: serde_json::to_vec(&claims)
            .expect("serialize")
            .into_boxed_slice(),
        claims: Default::default(),
        expires_at: 1_800_000_000,
        identity_headers: Default::default(),
    }
}

fn claim_header(claim: &str, header: &'static str) -> ClaimHeader {
    ClaimHeader {
        claim: claim.into(),
        header: HeaderName::from_static(header),
    }
}

fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .map(|value| value.to_str().expect("ASCII value"))
}

#[test]
fn strip_removes_mixed_case_duplicates() {
    let mut headers = HeaderMap::new();
    for name in [
        "X-Portcullis-Subject",
        "x-portcullis-subject",
        "X-PORTCULLIS-SCOPE",
        "x-Portcullis-Anything",
    ] {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        headers.append(name, HeaderValue::from_static("forged"));
    }
    headers.append("x-portcullisx", HeaderValue::from_static("kept"));
    headers.append("x-request-id", HeaderValue::from_static("kept"));

    strip_identity_headers(&mut headers);

    assert_eq!(headers.len(), 2, "{headers:?}");
    assert_eq!(get(&headers, "x-portcullisx"), Some("kept"));
    assert_eq!(get(&headers, "x-request-id"), Some("kept"));
}

#[test]
fn standard_headers_are_set() {
    let mut headers = HeaderMap::new();
    headers.insert("x-portcullis-subject", HeaderValue::from_static("forged"));
    let token = token(json!({"sub": "peter", "client_id": "applicationid"}));

    set_identity_headers(&mut headers, &token, &[]);

    assert_eq!(get(&headers, "x-portcullis-subject"), Some("peter"));
    assert_eq!(get(&headers, "x-portcullis-scope"), Some("foo bar"));
    assert_eq!(
        get(&headers, "x-portcullis-client-id"),
        Some("applicationid")
    );
    assert_eq!(
        get(&headers, "x-portcullis-issuer"),
        Some("https://localhost:8443")
    );
    assert_eq!(headers.get_all("x-portcullis-subject").iter().count(), 1);
}

#[test]
fn absent_claims_are_omitted() {
    let mut headers = HeaderMap::new();
    let token = token(json!({}));

    set_identity_headers(
        &mut headers,
        &token,
        &[claim_header("tenant", "x-portcullis-tenant")],
    );

    assert_eq!(get(&headers, "x-portcullis-subject"), None);
    assert_eq!(get(&headers, "x-portcullis-client-id"), None);
    assert_eq!(get(&headers, "x-portcullis-tenant"), None);
    assert_eq!(
        get(&headers, "x-portcullis-issuer"),
        Some("https://localhost:8443")
    );
}

#[test]
fn claim_values_are_encoded() {
    let claims = json!({
        "string": "acme",
        "number": 42,
        "float": 1.5,
        "flag": true,
        "null": null,
        "list": ["a", "b"],
        "comma_list": ["a,b", "c"],
        "mixed_list": ["a", 1],
        "object": {"k": "v", "n": [1, 2]},
        "unicode": "Jos\u{e9}",
        "percent": "100%",
        "newline": "a\nb",
    });
    let names = [
        ("string", "x-portcullis-string", Some("acme")),
        ("number", "x-portcullis-number", Some("42")),
        ("float", "x-portcullis-float", Some("1.5")),
        ("flag", "x-portcullis-flag", Some("true")),
        ("null", "x-portcullis-null", None),
        ("list", "x-portcullis-list", Some("a,b")),
        (
            "comma_list",
            "x-portcullis-comma-list",
            Some(r#"["a,b","c"]"#),
        ),
        ("mixed_list", "x-portcullis-mixed-list", Some(r#"["a",1]"#)),
        (
            "object",
            "x-portcullis-object",
            Some(r#"{"k":"v","n":[1,2]}"#),
        ),
        ("unicode", "x-portcullis-unicode", Some("Jos%C3%A9")),
        ("percent", "x-portcullis-percent", Some("100%25")),
        ("newline", "x-portcullis-newline", Some("a%0Ab")),
    ];
    let claim_headers: Vec<ClaimHeader> = names
        .iter()
        .map(|(claim, header, _)| claim_header(claim, header))
        .collect();
    let mut headers = HeaderMap::new();

    set_identity_headers(&mut headers, &token(claims), &claim_headers);

    for (claim, header, expected) in names {
        assert_eq!(get(&headers, header), expected, "claim {claim}");
    }
}

#[test]
fn configured_header_replaces_standard_one() {
    let mut headers = HeaderMap::new();
    let token = token(json!({"sub": "peter", "email": "peter@example.com"}));

    set_identity_headers(
        &mut headers,
        &token,
        &[claim_header("email", "x-portcullis-subject")],
    );

    assert_eq!(
        get(&headers, "x-portcullis-subject"),
        Some("peter@example.com")
    );
}
