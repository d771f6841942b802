use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method};

use super::*;
use crate::config::{AuthRequirement, PathMatch, RouteRule};

#[test]
fn safe_paths_pass() {
    let paths = [
        "/",
        "/orders",
        "/orders/",
        "/orders/7",
        "/orders/a%20b",
        "/files/report.v2.pdf",
        "/a/..b/c.",
        "/~user",
    ];
    for path in paths {
        assert_eq!(check_path(&Method::GET, path), Ok(()), "{path}");
    }
    assert_eq!(check_path(&Method::OPTIONS, "*"), Ok(()));
}

#[test]
fn unsafe_paths_are_rejected() {
    let cases = [
        ("orders", PathProblem::NotAbsolute),
        ("", PathProblem::NotAbsolute),
        ("*", PathProblem::NotAbsolute),
        ("/a/../b", PathProblem::DotSegment),
        ("/a/./b", PathProblem::DotSegment),
        ("/./", PathProblem::DotSegment),
        ("/..", PathProblem::DotSegment),
        ("/a/.", PathProblem::DotSegment),
        ("//orders", PathProblem::EmptySegment),
        ("/a//b", PathProblem::EmptySegment),
        ("/a\\b", PathProblem::Backslash),
        ("/admin;x=1", PathProblem::Semicolon),
        ("/a\0b", PathProblem::ControlCharacter),
        ("/a\tb", PathProblem::ControlCharacter),
        ("/a\u{7f}", PathProblem::ControlCharacter),
        ("/caf\u{e9}", PathProblem::ControlCharacter),
        ("/a%2fb", PathProblem::EncodedCharacter("%2f".into())),
        ("/a%2Fb", PathProblem::EncodedCharacter("%2F".into())),
        ("/a%5cb", PathProblem::EncodedCharacter("%5c".into())),
        ("/%2e%2e/admin", PathProblem::EncodedCharacter("%2e".into())),
        ("/a%2E", PathProblem::EncodedCharacter("%2E".into())),
        ("/a%252f", PathProblem::EncodedCharacter("%25".into())),
        ("/a%00", PathProblem::EncodedCharacter("%00".into())),
        ("/a%0A", PathProblem::EncodedCharacter("%0A".into())),
        ("/a%", PathProblem::BadPercentEncoding),
        ("/a%2", PathProblem::BadPercentEncoding),
        ("/a%zz", PathProblem::BadPercentEncoding),
    ];
    for (path, problem) in cases {
        assert_eq!(check_path(&Method::GET, path), Err(problem), "{path:?}");
    }
}

fn route(path: PathMatch, methods: &[Method], auth: AuthRequirement, scopes: &[&str]) -> RouteRule {
    RouteRule {
        path,
        methods: methods.to_vec(),
        auth,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        claims: Vec::new(),
    }
}

fn policy() -> RoutePolicy {
    RoutePolicy::new(vec![
        route(
            PathMatch::Exact("/healthz".into()),
            &[],
            AuthRequirement::None,
            &[],
        ),
        route(
            PathMatch::Prefix("/orders".into()),
            &[Method::POST],
            AuthRequirement::Required,
            &["foo"],
        ),
        route(
            PathMatch::Prefix("/orders".into()),
            &[],
            AuthRequirement::Required,
            &["bar"],
        ),
        route(
            PathMatch::Prefix("/".into()),
            &[Method::DELETE],
            AuthRequirement::Required,
            &["admin"],
        ),
    ])
}

#[test]
fn first_matching_route_wins() {
    let policy = policy();
    let foo = ["foo".to_string()];
    let bar = ["bar".to_string()];
    let admin = ["admin".to_string()];
    let cases: Vec<(Method, &str, RouteDecision)> = vec![
        (Method::GET, "/healthz", RouteDecision::Open),
        (Method::POST, "/healthz", RouteDecision::Open),
        (
            Method::GET,
            "/healthz/x",
            RouteDecision::TokenRequired { scopes: &[] },
        ),
        (
            Method::POST,
            "/orders",
            RouteDecision::TokenRequired { scopes: &foo },
        ),
        (
            Method::POST,
            "/orders/7",
            RouteDecision::TokenRequired { scopes: &foo },
        ),
        (
            Method::GET,
            "/orders/7",
            RouteDecision::TokenRequired { scopes: &bar },
        ),
        (
            Method::GET,
            "/ordersx",
            RouteDecision::TokenRequired { scopes: &[] },
        ),
        (
            Method::DELETE,
            "/ordersx",
            RouteDecision::TokenRequired { scopes: &admin },
        ),
        (
            Method::DELETE,
            "/orders/7",
            RouteDecision::TokenRequired { scopes: &bar },
        ),
        (
            Method::GET,
            "/other",
            RouteDecision::TokenRequired { scopes: &[] },
        ),
    ];
    for (method, path, expected) in cases {
        assert_eq!(policy.decide(&method, path), expected, "{method} {path}");
    }
}

fn headers(values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(
            AUTHORIZATION,
            HeaderValue::from_str(value).expect("valid value"),
        );
    }
    headers
}

#[test]
fn bearer_token_is_extracted() {
    let cases = [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer a-b_c~d+e/f==", "a-b_c~d+e/f=="),
    ];
    for (value, token) in cases {
        assert_eq!(
            extract_bearer(&headers(&[value])),
            Ok(Some(token)),
            "{value}"
        );
    }
}

#[test]
fn missing_or_other_scheme_gives_none() {
    assert_eq!(extract_bearer(&HeaderMap::new()), Ok(None));
    assert_eq!(extract_bearer(&headers(&["Basic dXNlcjpwYXNz"])), Ok(None));
    assert_eq!(extract_bearer(&headers(&["Basic"])), Ok(None));
    assert_eq!(extract_bearer(&headers(&["Bearerx abc"])), Ok(None));
}

#[test]
fn malformed_bearer_is_invalid_request() {
    let cases = [
        "Bearer",
        "Bearer ",
        "Bearer  abc",
        "Bearer abc def",
        "Bearer abc ",
        "Bearer a\tb",
        "Bearer ab=c",
        "Bearer =",
        "Bearer a,b",
        "Bearer \"abc\"",
        "",
        " Bearer abc",
    ];
    for value in cases {
        let map = headers(&[value]);
        let result = extract_bearer(&map);
        assert!(
            matches!(result, Err(InvalidRequest::MalformedBearer(_))),
            "{value:?}: {result:?}"
        );
    }
    let non_ascii = HeaderValue::from_bytes(b"Bearer caf\xc3\xa9").expect("obs-text allowed");
    let mut map = HeaderMap::new();
    map.insert(AUTHORIZATION, non_ascii);
    assert!(matches!(
        extract_bearer(&map),
        Err(InvalidRequest::MalformedBearer(_))
    ));
}

#[test]
fn two_authorization_headers_are_invalid() {
    let two_bearers = headers(&["Bearer abc", "Bearer def"]);
    assert_eq!(
        extract_bearer(&two_bearers),
        Err(InvalidRequest::MultipleAuthorizationHeaders)
    );
    let basic_and_bearer = headers(&["Basic abc", "Bearer def"]);
    assert_eq!(
        extract_bearer(&basic_and_bearer),
        Err(InvalidRequest::MultipleAuthorizationHeaders)
    );
}

#[test]
fn scopes_must_all_be_granted() {
    let granted = ["foo".to_string(), "bar".to_string()];
    assert!(has_scopes(&[], &granted));
    assert!(has_scopes(&["foo".into()], &granted));
    assert!(has_scopes(&["bar".into(), "foo".into()], &granted));
    assert!(!has_scopes(&["foo".into(), "baz".into()], &granted));
    assert!(!has_scopes(&["Foo".into()], &granted));
    assert!(!has_scopes(&["foo".into()], &[]));
}
