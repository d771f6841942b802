//! Response builders shared by every endpoint.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// The response type of every endpoint.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// Builds a JSON response from already encoded bytes.
pub(crate) fn json_bytes(status: StatusCode, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Builds a JSON response by serializing `body`.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    // The bodies are structs of strings, numbers and lists, which always serialize.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    json_bytes(status, Bytes::from(bytes))
}

/// Adds `Cache-Control: no-store` and `Pragma: no-cache`, which RFC 6749 section 5.1
/// requires on responses that carry tokens.
pub(crate) fn no_store(mut response: HttpResponse) -> HttpResponse {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Adds a `Cache-Control` header letting clients and proxies reuse the response for
/// `max_age_secs` seconds.
pub(crate) fn cacheable(mut response: HttpResponse, max_age_secs: u32) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={max_age_secs}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    error_description: String,
}

/// Builds the 404 response for a path no endpoint serves.
pub(crate) fn not_found(path: &str) -> HttpResponse {
    json_response(
        StatusCode::NOT_FOUND,
        &ErrorBody {
            error: "not_found",
            error_description: format!(
                "no endpoint at {path:?}; the token service serves /oauth/token, \
                 /.well-known/jwks.json, /.well-known/openid-configuration and \
                 /.well-known/oauth-authorization-server"
            ),
        },
    )
}

/// Builds the 405 response listing the allowed methods in `Allow`.
pub(crate) fn method_not_allowed(method: &Method, allowed: &'static str) -> HttpResponse {
    let mut response = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &ErrorBody {
            error: "method_not_allowed",
            error_description: format!("method {method} is not allowed here; use {allowed}"),
        },
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}
