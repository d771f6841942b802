//! Fuzzes the path normaliser and the route matcher: any path must either be rejected or
//! come out in a normal form that is stable, passes the policy's own check, and opens only
//! the one public route.
//!
//! The first input byte picks the method (bit 0: OPTIONS instead of GET) and whether routes
//! ignore letter case (bit 1). The rest is the path.
#![no_main]

use http::{Method, Request};
use libfuzzer_sys::fuzz_target;

use portcullis::config::{AuthRequirement, PathMatch, RouteRule};
use portcullis::inbound::target;
use portcullis::path::{fold_case, normalize};
use portcullis::policy::{check_path, RouteDecision, RoutePolicy};

fn route(path: PathMatch, auth: AuthRequirement) -> RouteRule {
    RouteRule {
        path,
        methods: Vec::new(),
        auth,
        scopes: Vec::new(),
        claims: Vec::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(path) = std::str::from_utf8(rest) else {
        return;
    };
    let method = if flags & 1 == 1 {
        Method::OPTIONS
    } else {
        Method::GET
    };
    let case_insensitive = flags & 2 == 2;

    let Ok(normal) = normalize(&method, path) else {
        return;
    };
    assert_eq!(normalize(&method, &normal).as_deref(), Ok(normal.as_str()));
    assert_eq!(check_path(&method, &normal), Ok(()));
    if normal != "*" {
        for segment in normal[1..].split('/') {
            assert_ne!(segment, ".", "{normal}");
            assert_ne!(segment, "..", "{normal}");
        }
        assert!(!normal.contains("//"), "{normal}");
        assert!(!normal.contains('\\'), "{normal}");
        assert!(!normal.contains(';'), "{normal}");
        let upper = normal.to_ascii_uppercase();
        for escape in ["%2F", "%5C", "%2E", "%25", "%3B"] {
            assert!(!upper.contains(escape), "{normal}");
        }
    }

    let route_path = if case_insensitive {
        let folded = fold_case(&normal);
        assert_eq!(normalize(&method, &folded).as_deref(), Ok(folded.as_str()));
        folded
    } else {
        normal.clone()
    };
    let policy = RoutePolicy::new(vec![
        route(PathMatch::Exact("/healthz".into()), AuthRequirement::None),
        route(
            PathMatch::Prefix("/admin".into()),
            AuthRequirement::Required,
        ),
    ]);
    if policy.decide(&method, &route_path) == RouteDecision::Open {
        assert_eq!(route_path, "/healthz", "{path:?} opened the public route");
    }

    // The inbound listener's target check must agree with the normaliser.
    if let Ok(request) = Request::builder()
        .method(method.clone())
        .uri(path)
        .header("host", "orders")
        .body(())
    {
        if let Ok(checked) = target::check(&request) {
            assert_eq!(
                checked.path,
                normalize(&method, request.uri().path()).unwrap()
            );
        }
    }
});
