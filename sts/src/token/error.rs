//! OAuth 2.0 error responses (RFC 6749 section 5.2) and the one place that maps them to
//! HTTP status codes and headers.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::response::{json_response, no_store};

/// `WWW-Authenticate` challenge of an `invalid_client` response. RFC 6749 section 5.2
/// requires a challenge for the scheme the client used, and HTTP Basic is the only one here.
const BASIC_CHALLENGE: &str = r#"Basic realm="portcullis-sts""#;

/// The `error` codes this service returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// A parameter is missing, repeated, or malformed, or the request is otherwise invalid.
    InvalidRequest,
    /// Client authentication failed or was missing.
    InvalidClient,
    /// The user credentials or refresh token are invalid, expired, revoked or belong to
    /// another client.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The service does not implement this grant type.
    UnsupportedGrantType,
    /// A requested scope is unknown or not allowed.
    InvalidScope,
    /// A requested audience is not allowed for the client (RFC 8707 section 2).
    InvalidTarget,
    /// The service failed to process a valid request.
    ServerError,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::ServerError => "server_error",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A token endpoint error with a description for the client developer. Descriptions never
/// contain secrets, passwords or tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'static str,
    error_description: &'a str,
}

impl OAuthError {
    pub(crate) fn new(code: ErrorCode, description: impl Into<String>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    pub(crate) fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidRequest, description)
    }

    pub(crate) fn invalid_client(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidClient, description)
    }

    pub(crate) fn invalid_grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new(ErrorCode::InvalidGrant, description)
    }

    /// Builds a `server_error` whose description points to the server log, where the
    /// caller logs the cause.
    pub(crate) fn server_error() -> OAuthError {
        OAuthError::new(
            ErrorCode::ServerError,
            "the token service failed to process the request; the cause is in its log",
        )
    }

    /// Builds the JSON error response with `Cache-Control: no-store` and, for
    /// `invalid_client`, the `WWW-Authenticate` challenge.
    pub(crate) fn into_response(self) -> Response<Full<Bytes>> {
        let body = ErrorBody {
            error: self.code.as_str(),
            error_description: &self.description,
        };
        let mut response = no_store(json_response(self.code.status(), &body));
        if self.code == ErrorCode::InvalidClient {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            );
        }
        response
    }
}
