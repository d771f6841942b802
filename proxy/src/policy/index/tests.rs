use http::Method;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::RouteIndex;
use crate::config::{AuthRequirement, PathMatch, RouteRule};
use crate::path;

/// Returns the position of the first route that matches, trying the routes in declaration
/// order. This is the definition of route matching that the index must reproduce.
fn scan_first_match(routes: &[RouteRule], method: &Method, path: &str) -> Option<usize> {
    routes
        .iter()
        .position(|route| route_matches(route, method, path))
}

fn route_matches(route: &RouteRule, method: &Method, path: &str) -> bool {
    let method_matches = route.methods.is_empty() || route.methods.contains(method);
    let path_matches = match &route.path {
        PathMatch::Exact(exact) => path == exact,
        PathMatch::Prefix(prefix) if prefix == "/" => path.starts_with('/'),
        PathMatch::Prefix(prefix) => path
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
    };
    method_matches && path_matches
}

fn route(path: PathMatch, methods: &[Method]) -> RouteRule {
    RouteRule {
        path,
        methods: methods.to_vec(),
        auth: AuthRequirement::Required,
        scopes: Vec::new(),
        claims: Vec::new(),
    }
}

fn prefix(path: &str) -> PathMatch {
    PathMatch::Prefix(path.into())
}

fn exact(path: &str) -> PathMatch {
    PathMatch::Exact(path.into())
}

/// Checks the index against the scan, and against `expected`, for each `(method, path)`.
fn assert_cases(routes: &[RouteRule], cases: &[(Method, &str, Option<usize>)]) {
    let index = RouteIndex::new(routes);
    for (method, path, expected) in cases {
        assert_eq!(
            scan_first_match(routes, method, path),
            *expected,
            "scan: {method} {path:?}"
        );
        assert_eq!(
            index.first_match(method, path),
            *expected,
            "index: {method} {path:?}"
        );
    }
}

#[test]
fn prefix_matches_at_segment_boundary() {
    let routes = [route(prefix("/a"), &[])];
    assert_cases(
        &routes,
        &[
            (Method::GET, "/a", Some(0)),
            (Method::GET, "/a/", Some(0)),
            (Method::GET, "/a/b", Some(0)),
            (Method::GET, "/ab", None),
            (Method::GET, "/", None),
            (Method::GET, "/b/a", None),
            (Method::GET, "a", None),
        ],
    );
}

#[test]
fn prefix_with_trailing_slash_needs_it() {
    // The configuration trims a trailing `/` from prefixes, but the policy accepts any rule.
    let routes = [route(prefix("/a/"), &[])];
    assert_cases(
        &routes,
        &[
            (Method::GET, "/a/", Some(0)),
            (Method::GET, "/a//b", Some(0)),
            (Method::GET, "/a", None),
            (Method::GET, "/a/b", None),
        ],
    );
}

#[test]
fn exact_matches_only_whole_path() {
    let routes = [route(exact("/a/b"), &[])];
    assert_cases(
        &routes,
        &[
            (Method::GET, "/a/b", Some(0)),
            (Method::GET, "/a/b/", None),
            (Method::GET, "/a", None),
            (Method::GET, "/a/bc", None),
        ],
    );
}

#[test]
fn root_prefix_matches_absolute_paths() {
    let routes = [
        route(exact("*"), &[Method::OPTIONS]),
        route(prefix("/"), &[]),
    ];
    assert_cases(
        &routes,
        &[
            (Method::GET, "/", Some(1)),
            (Method::GET, "/a/b", Some(1)),
            (Method::OPTIONS, "*", Some(0)),
            (Method::GET, "*", None),
            (Method::GET, "", None),
        ],
    );
}

#[test]
fn lowest_position_wins_across_kinds() {
    let routes = [
        route(prefix("/a/b"), &[Method::POST]),
        route(exact("/a/b"), &[]),
        route(prefix("/a"), &[]),
        route(prefix("/"), &[Method::DELETE]),
        route(exact("/a/b/c"), &[Method::DELETE]),
    ];
    assert_cases(
        &routes,
        &[
            (Method::POST, "/a/b", Some(0)),
            (Method::GET, "/a/b", Some(1)),
            (Method::GET, "/a/b/c", Some(2)),
            (Method::DELETE, "/a/b/c", Some(2)),
            (Method::DELETE, "/x", Some(3)),
            (Method::GET, "/x", None),
        ],
    );
}

#[test]
fn method_specific_rule_before_general_one() {
    let routes = [
        route(
            prefix("/a"),
            &[Method::GET, Method::from_bytes(b"PURGE").unwrap()],
        ),
        route(prefix("/a"), &[]),
        route(prefix("/a"), &[Method::POST]),
    ];
    assert_cases(
        &routes,
        &[
            (Method::GET, "/a", Some(0)),
            (Method::from_bytes(b"PURGE").unwrap(), "/a/x", Some(0)),
            (Method::POST, "/a", Some(1)),
            (Method::PUT, "/a", Some(1)),
        ],
    );
}

/// Segments for generated paths: shared leading text (`a`, `ab`), letter case, an empty
/// segment that yields `//` or a trailing `/`, and an escape.
const SEGMENTS: &[&str] = &["a", "ab", "b", "A", "Ab", "", "x%20y"];

fn methods() -> Vec<Method> {
    vec![
        Method::GET,
        Method::POST,
        Method::DELETE,
        Method::PATCH,
        Method::from_bytes(b"PURGE").unwrap(),
    ]
}

fn random_path(rng: &mut StdRng, max_segments: usize) -> String {
    let count = rng.gen_range(0..=max_segments);
    let mut path = String::new();
    for _ in 0..count {
        path.push('/');
        path.push_str(SEGMENTS.choose(rng).unwrap());
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// Generates one route. Most prefixes are trimmed of trailing `/` as the configuration
/// does, and the rest are kept as written, because the policy accepts any rule.
fn random_route(rng: &mut StdRng) -> RouteRule {
    let path = random_path(rng, 3);
    let path = if rng.gen_bool(0.5) {
        PathMatch::Exact(path)
    } else if rng.gen_bool(0.15) {
        PathMatch::Prefix("/".into())
    } else if rng.gen_bool(0.7) {
        let trimmed = path.trim_end_matches('/');
        PathMatch::Prefix(if trimmed.is_empty() { "/" } else { trimmed }.into())
    } else {
        PathMatch::Prefix(path)
    };

    let all = methods();
    let listed = if rng.gen_bool(0.5) {
        Vec::new()
    } else {
        let count = rng.gen_range(1..=3);
        all.choose_multiple(rng, count).cloned().collect()
    };
    route(path, &listed)
}

/// Generates a request path: random, or one of the table's paths with a boundary case
/// appended, so many requests land on or next to a rule.
fn random_request_path(rng: &mut StdRng, routes: &[RouteRule]) -> String {
    match rng.gen_range(0..10) {
        0 => ["", "*", "a", "a/b", "/"].choose(rng).unwrap().to_string(),
        1..=4 => random_path(rng, 4),
        _ => {
            let base = match &routes.choose(rng).unwrap().path {
                PathMatch::Exact(path) | PathMatch::Prefix(path) => path.clone(),
            };
            let suffix = ["", "/", "b", "/b", "/a/b", "//"].choose(rng).unwrap();
            format!("{base}{suffix}")
        }
    }
}

/// Folds the case of every route path, as the configuration does when
/// `case_insensitive_routes` is set. The inbound listener then folds each request path.
fn fold_routes(routes: &mut [RouteRule]) {
    for route in routes {
        match &mut route.path {
            PathMatch::Exact(path) | PathMatch::Prefix(path) => *path = path::fold_case(path),
        }
    }
}

#[test]
fn index_agrees_with_scan_on_random_tables() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0005);
    let all_methods = methods();
    let mut compared = 0;
    let mut matched_exact = 0;
    let mut matched_prefix = 0;
    let mut matched_root = 0;
    let mut unmatched = 0;

    for table in 0..600 {
        let count = rng.gen_range(1..=40);
        let mut routes: Vec<RouteRule> = (0..count).map(|_| random_route(&mut rng)).collect();
        let case_insensitive = table % 3 == 0;
        if case_insensitive {
            fold_routes(&mut routes);
        }
        let index = RouteIndex::new(&routes);

        for _ in 0..100 {
            let mut path = random_request_path(&mut rng, &routes);
            if case_insensitive {
                path = path::fold_case(&path);
            }
            let method = all_methods.choose(&mut rng).unwrap();

            let expected = scan_first_match(&routes, method, &path);
            assert_eq!(
                index.first_match(method, &path),
                expected,
                "table {table} ({routes:?}), request {method} {path:?}"
            );
            compared += 1;
            match expected.map(|position| &routes[position].path) {
                Some(PathMatch::Exact(_)) => matched_exact += 1,
                Some(PathMatch::Prefix(prefix)) if prefix == "/" => matched_root += 1,
                Some(PathMatch::Prefix(_)) => matched_prefix += 1,
                None => unmatched += 1,
            }
        }
    }

    // The generator must exercise every kind of outcome, or agreement proves little.
    assert_eq!(compared, 60_000);
    assert!(matched_exact > 1000, "exact matches: {matched_exact}");
    assert!(matched_prefix > 1000, "prefix matches: {matched_prefix}");
    assert!(matched_root > 1000, "root prefix matches: {matched_root}");
    assert!(unmatched > 1000, "unmatched requests: {unmatched}");
}

#[test]
fn index_agrees_with_scan_on_large_table() {
    // Numbered segments spread 1000 routes over many trie nodes. The table has no root
    // prefix, which would match nearly every request by itself.
    let mut rng = StdRng::seed_from_u64(0x5eed_1000);
    let all_methods = methods();
    let segments: Vec<String> = (0..30).map(|n| format!("s{n}")).collect();
    let random_numbered_path = |rng: &mut StdRng| {
        let count = rng.gen_range(1..=3);
        (0..count)
            .map(|_| format!("/{}", segments.choose(rng).unwrap()))
            .collect::<String>()
    };

    let routes: Vec<RouteRule> = (0..1000)
        .map(|_| {
            let path = random_numbered_path(&mut rng);
            let kind = if rng.gen_bool(0.5) {
                PathMatch::Exact(path)
            } else {
                PathMatch::Prefix(path)
            };
            let listed = if rng.gen_bool(0.3) {
                Vec::new()
            } else {
                vec![all_methods.choose(&mut rng).unwrap().clone()]
            };
            route(kind, &listed)
        })
        .collect();
    let index = RouteIndex::new(&routes);

    let mut matched = 0;
    for _ in 0..5000 {
        let mut path = random_numbered_path(&mut rng);
        if rng.gen_bool(0.25) {
            path.insert_str(0, "/unknown");
        }
        if rng.gen_bool(0.3) {
            path.push_str(["/", "x", "/x/y"].choose(&mut rng).unwrap());
        }
        let method = all_methods.choose(&mut rng).unwrap();
        let expected = scan_first_match(&routes, method, &path);
        assert_eq!(
            index.first_match(method, &path),
            expected,
            "request {method} {path:?}"
        );
        matched += usize::from(expected.is_some());
    }
    assert!(matched > 1000, "matched requests: {matched} of 5000");
    assert!(matched < 4000, "matched requests: {matched} of 5000");
}
