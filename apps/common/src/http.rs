//! JSON responses, the error body `{"error": "...", "detail": "..."}`, and reading a JSON
//! request body with a size limit.

use std::error::Error as StdError;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use thiserror::Error;
use tracing::error;

use crate::json::JsonError;

/// The largest request body either app reads. The largest valid body, an order with a few
/// dozen items, is a few KiB, so 64 KiB leaves ample room and still bounds memory per
/// request.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The body type of every response.
pub type ResponseBody = Full<Bytes>;

const APPLICATION_JSON: &str = "application/json";

/// The error body: `error` is a stable snake_case code for programs, and `detail` is a
/// sentence for people that names the bad field or value.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'a str,
    pub detail: &'a str,
}

/// Serializes `value` as the JSON body of a response with `status`.
pub fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    value: &T,
) -> Response<ResponseBody> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_JSON));
            response
        }
        Err(source) => {
            error!(error = %source, "failed to serialize a response body");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "failed to serialize the response; see the server log",
            )
        }
    }
}

/// Builds an error response with the `{"error", "detail"}` body.
pub fn error_response(status: StatusCode, error: &str, detail: &str) -> Response<ResponseBody> {
    json_response(status, &ErrorBody { error, detail })
}

/// Builds the 204 response, which has no body and so no `Content-Type`.
pub fn no_content() -> Response<ResponseBody> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Builds the 404 response for a path that no route matches.
pub fn unknown_path(path: &str) -> Response<ResponseBody> {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no resource at {path}"),
    )
}

/// Builds the 405 response, with `allow` (for example `"GET"`) in the `Allow` header.
pub fn method_not_allowed(
    method: &Method,
    path: &str,
    allow: &'static str,
) -> Response<ResponseBody> {
    let detail = format!("{method} is not allowed on {path}; use {allow}");
    let mut response = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &detail,
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// Builds the 400 response for a body that failed to parse.
pub fn invalid_request(error: &JsonError) -> Response<ResponseBody> {
    error_response(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        &error.to_string(),
    )
}

/// A failure to read a request body.
#[derive(Debug, Error)]
pub enum BodyError {
    #[error("Content-Type must be application/json, but the request has {found}")]
    UnsupportedMediaType { found: String },

    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },

    #[error("failed to read the request body: {source}")]
    Read {
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl BodyError {
    /// Maps the error to 415, 413 or 400.
    pub fn to_response(&self) -> Response<ResponseBody> {
        let (status, code) = match self {
            Self::UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Read { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
        };
        error_response(status, code, &self.to_string())
    }
}

/// Reads the body of a request whose `Content-Type` is `application/json` (parameters such
/// as `charset` are allowed), up to [`MAX_BODY_BYTES`].
///
/// A missing `Content-Type` is rejected like any other non-JSON type. A `Content-Length`
/// above the limit is rejected before any of the body is read.
pub async fn read_json_body(request: Request<Incoming>) -> Result<Bytes, BodyError> {
    check_json_content_type(&request)?;

    let declared_length = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(BodyError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
    }

    match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(source) if source.is::<LengthLimitError>() => Err(BodyError::TooLarge {
            limit: MAX_BODY_BYTES,
        }),
        Err(source) => Err(BodyError::Read { source }),
    }
}

fn check_json_content_type<B>(request: &Request<B>) -> Result<(), BodyError> {
    let Some(value) = request.headers().get(CONTENT_TYPE) else {
        return Err(BodyError::UnsupportedMediaType {
            found: "no Content-Type".to_owned(),
        });
    };

    let media_type = value
        .to_str()
        .ok()
        .and_then(|text| text.split(';').next())
        .map(str::trim);
    match media_type {
        Some(media_type) if media_type.eq_ignore_ascii_case(APPLICATION_JSON) => Ok(()),
        _ => Err(BodyError::UnsupportedMediaType {
            found: format!(
                "Content-Type {:?}",
                String::from_utf8_lossy(value.as_bytes())
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with_content_type(value: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method(Method::POST).uri("/orders");
        if let Some(value) = value {
            builder = builder.header(CONTENT_TYPE, value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn content_type_accepts_json_with_parameters() {
        for value in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ] {
            let request = request_with_content_type(Some(value));
            assert!(
                check_json_content_type(&request).is_ok(),
                "{value} was rejected"
            );
        }
    }

    #[test]
    fn content_type_rejects_other_types() {
        let cases = [
            (Some("text/plain"), "Content-Type must be application/json, but the request has Content-Type \"text/plain\""),
            (Some("application/x-www-form-urlencoded"), "Content-Type must be application/json, but the request has Content-Type \"application/x-www-form-urlencoded\""),
            (None, "Content-Type must be application/json, but the request has no Content-Type"),
        ];

        for (value, expected) in cases {
            let error = check_json_content_type(&request_with_content_type(value)).unwrap_err();
            assert_eq!(error.to_string(), expected);
            assert_eq!(
                error.to_response().status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            );
        }
    }

    #[test]
    fn method_not_allowed_sets_allow_header() {
        let response = method_not_allowed(&Method::DELETE, "/orders", "POST");

        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "POST");
        assert_eq!(response.headers()[CONTENT_TYPE], APPLICATION_JSON);
    }
}
