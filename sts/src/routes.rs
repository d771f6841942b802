//! Request routing by path and method, and the one log line per request.

use std::sync::Arc;

use http::{Method, StatusCode};
use hyper::body::Body;
use hyper::Request;
use tracing::info;

use crate::keys::KeyStore;
use crate::metadata::{
    Metadata, JWKS_PATH, OAUTH_METADATA_PATH, OPENID_CONFIGURATION_PATH, TOKEN_PATH,
};
use crate::response::{cacheable, json_bytes, method_not_allowed, not_found, HttpResponse};
use crate::token::TokenService;

/// How long clients may cache the JWKS and metadata documents, in seconds. Five minutes
/// bounds how long a verifier that honours it keeps missing a newly rotated key, while
/// sparing the service a request per token verification.
const DOCUMENT_MAX_AGE_SECS: u32 = 300;

/// Maximum length of a request path in the log, in bytes, so a client cannot flood the log.
const MAX_LOGGED_PATH_BYTES: usize = 256;

/// Details a handler records for the request's log line. None of them is secret.
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    /// The authenticated client.
    pub client_id: Option<String>,
    pub grant_type: Option<&'static str>,
    /// The OAuth error code of a failed token request.
    pub error: Option<&'static str>,
}

/// Everything the endpoints share.
pub(crate) struct App {
    pub tokens: TokenService,
    pub keys: Arc<KeyStore>,
    pub metadata: Metadata,
}

impl App {
    /// Routes one request and logs its method, path, status, client id, grant type and
    /// error code.
    pub(crate) async fn handle<B>(&self, request: Request<B>) -> HttpResponse
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let mut log = RequestLog::default();

        let response = self.route(&method, &path, request, &mut log).await;

        info!(
            method = %method,
            path = ?truncate(&path),
            status = response.status().as_u16(),
            client_id = log.client_id.as_deref(),
            grant_type = log.grant_type,
            error = log.error,
            "request"
        );
        response
    }

    async fn route<B>(
        &self,
        method: &Method,
        path: &str,
        request: Request<B>,
        log: &mut RequestLog,
    ) -> HttpResponse
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let is_read = method == Method::GET || method == Method::HEAD;
        match path {
            TOKEN_PATH if method == Method::POST => self.tokens.handle(request, log).await,
            TOKEN_PATH => method_not_allowed(method, "POST"),
            JWKS_PATH | OPENID_CONFIGURATION_PATH | OAUTH_METADATA_PATH if !is_read => {
                method_not_allowed(method, "GET, HEAD")
            }
            JWKS_PATH => document(self.keys.snapshot().jwks_json.clone()),
            OPENID_CONFIGURATION_PATH => document(self.metadata.openid.clone()),
            OAUTH_METADATA_PATH => document(self.metadata.oauth.clone()),
            _ => not_found(path),
        }
    }
}

fn document(body: bytes::Bytes) -> HttpResponse {
    cacheable(json_bytes(StatusCode::OK, body), DOCUMENT_MAX_AGE_SECS)
}

fn truncate(path: &str) -> &str {
    if path.len() <= MAX_LOGGED_PATH_BYTES {
        return path;
    }
    let mut end = MAX_LOGGED_PATH_BYTES;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    &path[..end]
}
