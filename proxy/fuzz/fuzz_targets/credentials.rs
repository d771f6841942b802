//! Fuzzes finding a request's token: the `Authorization` header, the query parameter and
//! the cookie, and removing them again before forwarding.
//!
//! The input is split at 0x00 bytes into an `Authorization` value, a `Cookie` value and a
//! query string. A fourth part, when present, adds a second `Authorization` header.
#![no_main]

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderValue, Request, Uri};
use libfuzzer_sys::fuzz_target;

use portcullis::auth::bearer::{extract_token, strip_token};
use portcullis::config::TokenSources;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |byte| *byte == 0);
    let authorization = parts.next().unwrap_or_default();
    let cookie = parts.next().unwrap_or_default();
    let query = parts
        .next()
        .and_then(|bytes| std::str::from_utf8(bytes).ok());
    let second = parts.next();

    let mut headers = HeaderMap::new();
    for (name, value) in [
        (AUTHORIZATION, Some(authorization)),
        (COOKIE, Some(cookie)),
        (AUTHORIZATION, second),
    ] {
        if let Some(Ok(value)) = value.map(HeaderValue::from_bytes) {
            headers.append(name, value);
        }
    }
    let sources = TokenSources {
        query_parameter: Some("access_token".into()),
        cookie: Some("session".into()),
    };
    let _ = extract_token(&headers, query, &sources);
    let _ = extract_token(&headers, query, &TokenSources::default());

    let Some(uri) = query.and_then(|query| format!("/orders?{query}").parse::<Uri>().ok()) else {
        return;
    };
    let (mut request, ()) = Request::get(uri)
        .body(())
        .expect("a parsed URI is valid")
        .into_parts();
    request.headers = headers;
    strip_token(&mut request, &sources);
});
