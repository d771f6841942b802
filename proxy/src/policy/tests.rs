use http::Method;

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

#[test]
fn path_not_in_normal_form_rejected() {
    assert_eq!(
        check_path(&Method::GET, "/%72eports"),
        Err(PathProblem::NotNormalized("/reports".into()))
    );
    assert_eq!(
        check_path(&Method::GET, "/caf%c3%a9"),
        Err(PathProblem::NotNormalized("/caf%C3%A9".into()))
    );
    assert_eq!(check_path(&Method::GET, "/caf%C3%A9"), Ok(()));
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

/// A token requirement with `scopes` and no claim requirements.
fn token(scopes: &[String]) -> RouteDecision<'_> {
    RouteDecision::TokenRequired {
        scopes,
        claims: &[],
    }
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
        (Method::GET, "/healthz/x", token(&[])),
        (Method::POST, "/orders", token(&foo)),
        (Method::POST, "/orders/7", token(&foo)),
        (Method::GET, "/orders/7", token(&bar)),
        (Method::GET, "/ordersx", token(&[])),
        (Method::DELETE, "/ordersx", token(&admin)),
        (Method::DELETE, "/orders/7", token(&bar)),
        (Method::GET, "/other", token(&[])),
    ];
    for (method, path, expected) in cases {
        assert_eq!(policy.decide(&method, path), expected, "{method} {path}");
    }
}
