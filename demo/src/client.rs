//! A small HTTPS client that trusts only the demo CA, for the walkthrough and the tests.

use std::path::Path;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A response read to the end.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Parses the body as JSON, returning `Null` when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Returns a header's value as text, or an empty string when it is absent or not ASCII.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }
}

/// A failure to get any response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] portcullis::tls::TlsError),
    #[error("invalid request to {url}: {message}")]
    Request { url: String, message: String },
    #[error("request to {url} failed: {message}")]
    Send { url: String, message: String },
}

/// An HTTPS and HTTP client for the demo's endpoints.
#[derive(Clone)]
pub struct DemoClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl DemoClient {
    /// Creates a client that trusts `ca` and, with `identity` as `(cert, key)`, presents that
    /// client certificate.
    pub fn new(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<DemoClient, ClientError> {
        let tls = portcullis::tls::client_config(ca, identity)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(DemoClient { client })
    }

    /// Sends one request and reads the whole response.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, ClientError> {
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body.into()))
            .map_err(|err| ClientError::Request {
                url: url.to_owned(),
                message: err.to_string(),
            })?;
        let send_error = |message: String| ClientError::Send {
            url: url.to_owned(),
            message,
        };
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| send_error(error_chain(&err)))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|err| send_error(err.to_string()))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// Joins an error with its sources, because hyper's top-level message ("client error
/// (Connect)") hides the cause.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
