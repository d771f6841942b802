use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue, Request};

use super::*;

fn headers(name: http::HeaderName, values: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        headers.append(
            name.clone(),
            HeaderValue::from_str(value).expect("valid value"),
        );
    }
    headers
}

fn authorization(values: &[&str]) -> HeaderMap {
    headers(AUTHORIZATION, values)
}

fn header_only() -> TokenSources {
    TokenSources::default()
}

fn all_sources() -> TokenSources {
    TokenSources {
        query_parameter: Some("access_token".into()),
        cookie: Some("session".into()),
    }
}

fn text(found: Result<Option<FoundToken<'_>>, CredentialProblem>) -> Option<String> {
    found
        .expect("no credential problem")
        .map(|token| token.text.into_owned())
}

#[test]
fn bearer_token_is_taken_exactly() {
    let cases = [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("bEaReR abc", "abc"),
        ("Bearer a-b_c~d+e/f==", "a-b_c~d+e/f=="),
        // Characters outside base64url stay in the token, so the verifier rejects it as
        // malformed (401) instead of the request being reshaped into something valid.
        ("Bearer a\tb", "a\tb"),
        ("Bearer ab=c", "ab=c"),
        ("Bearer \"abc\"", "\"abc\""),
    ];
    for (value, token) in cases {
        let map = authorization(&[value]);
        let found = extract_token(&map, None, &header_only());
        assert_eq!(text(found), Some(token.to_owned()), "{value:?}");
    }
}

#[test]
fn missing_or_other_scheme_gives_none() {
    let none = |map: &HeaderMap| text(extract_token(map, None, &header_only()));
    assert_eq!(none(&HeaderMap::new()), None);
    assert_eq!(none(&authorization(&["Basic dXNlcjpwYXNz"])), None);
    assert_eq!(none(&authorization(&["Basic"])), None);
    assert_eq!(none(&authorization(&["Bearerx abc"])), None);
}

#[test]
fn malformed_bearer_is_invalid_request() {
    let cases = [
        "Bearer",
        "Bearer ",
        "Bearer  abc",
        "Bearer abc def",
        "Bearer abc ",
        "",
        " Bearer abc",
    ];
    for value in cases {
        let map = authorization(&[value]);
        let result = extract_token(&map, None, &header_only());
        assert!(
            matches!(result, Err(CredentialProblem::MalformedBearer(_))),
            "{value:?}: {result:?}"
        );
    }
}

#[test]
fn non_ascii_token_is_kept_for_the_verifier() {
    let mut map = HeaderMap::new();
    let value = HeaderValue::from_bytes(b"Bearer caf\xc3\xa9").expect("obs-text allowed");
    map.insert(AUTHORIZATION, value);
    let found = text(extract_token(&map, None, &header_only()));
    assert_eq!(found.as_deref(), Some("café"));
}

#[test]
fn two_authorization_headers_are_invalid() {
    for values in [["Bearer abc", "Bearer def"], ["Basic abc", "Bearer def"]] {
        assert_eq!(
            extract_token(&authorization(&values), None, &header_only()),
            Err(CredentialProblem::MultipleAuthorizationHeaders)
        );
    }
}

#[test]
fn query_and_cookie_sources_are_off_by_default() {
    let cookie = headers(COOKIE, &["session=abc"]);
    assert_eq!(
        text(extract_token(
            &cookie,
            Some("access_token=abc"),
            &header_only()
        )),
        None
    );
}

#[test]
fn configured_sources_yield_the_token() {
    let sources = all_sources();
    let empty = HeaderMap::new();
    let from_query = extract_token(&empty, Some("a=1&access_token=abc"), &sources)
        .expect("valid")
        .expect("token");
    assert_eq!(from_query.text, "abc");
    assert_eq!(from_query.source, TokenSource::Query);

    let cookies = headers(COOKIE, &["theme=dark; session=abc.def", "lang=en"]);
    let from_cookie = extract_token(&cookies, None, &sources)
        .expect("valid")
        .expect("token");
    assert_eq!(from_cookie.text, "abc.def");
    assert_eq!(from_cookie.source, TokenSource::Cookie);
}

#[test]
fn query_token_is_form_decoded() {
    let sources = all_sources();
    let found = text(extract_token(
        &HeaderMap::new(),
        Some("access_token=a%2Eb+c"),
        &sources,
    ));
    assert_eq!(found.as_deref(), Some("a.b c"));
}

#[test]
fn token_in_two_places_is_ambiguous() {
    let sources = all_sources();
    let header = authorization(&["Bearer abc"]);
    assert_eq!(
        extract_token(&header, Some("access_token=abc"), &sources),
        Err(CredentialProblem::SeveralSources {
            first: TokenSource::Header,
            second: TokenSource::Query,
        })
    );

    let mut header_and_cookie = authorization(&["Bearer abc"]);
    header_and_cookie.insert(COOKIE, HeaderValue::from_static("session=abc"));
    assert_eq!(
        extract_token(&header_and_cookie, None, &sources),
        Err(CredentialProblem::SeveralSources {
            first: TokenSource::Header,
            second: TokenSource::Cookie,
        })
    );

    let cookie = headers(COOKIE, &["session=abc"]);
    assert_eq!(
        extract_token(&cookie, Some("access_token=abc"), &sources),
        Err(CredentialProblem::SeveralSources {
            first: TokenSource::Query,
            second: TokenSource::Cookie,
        })
    );
}

#[test]
fn access_token_beside_header_is_ambiguous() {
    let header = authorization(&["Bearer abc"]);
    assert_eq!(
        extract_token(&header, Some("access_token=xyz"), &header_only()),
        Err(CredentialProblem::SeveralSources {
            first: TokenSource::Header,
            second: TokenSource::Query,
        })
    );
    let found = text(extract_token(&header, Some("other=xyz"), &header_only()));
    assert_eq!(found.as_deref(), Some("abc"));
}

#[test]
fn repeated_query_parameter_or_cookie_is_ambiguous() {
    let sources = all_sources();
    assert_eq!(
        extract_token(
            &HeaderMap::new(),
            Some("access_token=a&access_token=b"),
            &sources
        ),
        Err(CredentialProblem::RepeatedQueryParameter(
            "access_token".into()
        ))
    );
    let cookies = headers(COOKIE, &["session=a", "session=b"]);
    assert_eq!(
        extract_token(&cookies, None, &sources),
        Err(CredentialProblem::RepeatedCookie("session".into()))
    );
}

#[test]
fn strip_token_removes_every_source() {
    let request = Request::get("/orders?x=1&access_token=abc&y=%20")
        .header(AUTHORIZATION, "Bearer abc")
        .header(COOKIE, "theme=dark; session=abc")
        .header(COOKIE, "session=abc")
        .body(())
        .expect("valid request");
    let (mut parts, ()) = request.into_parts();

    strip_token(&mut parts, &all_sources());

    assert_eq!(parts.uri, "/orders?x=1&y=%20");
    assert!(parts.headers.get(AUTHORIZATION).is_none());
    let cookies: Vec<&str> = parts
        .headers
        .get_all(COOKIE)
        .iter()
        .map(|value| value.to_str().expect("ASCII"))
        .collect();
    assert_eq!(cookies, ["theme=dark"]);
}

#[test]
fn strip_token_drops_an_emptied_query() {
    let request = Request::get("http://app.test/orders?access_token=abc")
        .body(())
        .expect("valid request");
    let (mut parts, ()) = request.into_parts();

    strip_token(&mut parts, &all_sources());

    assert_eq!(parts.uri, "http://app.test/orders");
}

#[test]
fn strip_token_keeps_query_when_source_is_off() {
    let request = Request::get("/orders?access_token=abc")
        .body(())
        .expect("valid request");
    let (mut parts, ()) = request.into_parts();

    strip_token(&mut parts, &header_only());

    assert_eq!(parts.uri, "/orders?access_token=abc");
}
