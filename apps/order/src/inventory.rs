//! The call to inventory's `PUT /inventory`, sent through the sidecar's outbound listener.
//!
//! The request goes to the configured `outbound` address with `Host` set to the inventory
//! service's name, which the sidecar uses to pick the upstream. The only header copied from
//! the caller is `Authorization`, so the inventory sidecar can verify the same token.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use apps_common::http::MAX_BODY_BYTES;
use apps_common::items::ItemList;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use thiserror::Error;

/// How long an idle pooled connection to the outbound listener is kept for reuse.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The inventory's decision on a request to take stock.
#[derive(Debug)]
pub enum Reservation {
    /// Inventory returned a 2xx status: the stock is taken.
    Taken,
    /// Inventory returned 409 because an item is short. The value is its JSON error body.
    Insufficient(serde_json::Map<String, serde_json::Value>),
}

/// A failed call to the inventory. Each message names the address or status involved.
#[derive(Debug, Error)]
pub enum InventoryError {
    #[error("inventory unreachable at {outbound}: {reason}")]
    Unreachable {
        outbound: SocketAddr,
        reason: String,
    },

    #[error("inventory at {outbound} did not respond within {timeout:?}")]
    TimedOut {
        outbound: SocketAddr,
        timeout: Duration,
    },

    #[error("request to inventory at {outbound} failed: {reason}")]
    Failed {
        outbound: SocketAddr,
        reason: String,
    },

    /// A status other than 2xx and 409. `detail` is the `detail` field of the response
    /// body when it has one, such as the sidecar's reason for a 401.
    #[error("inventory returned {}{}", .status.as_u16(), detail_suffix(.detail))]
    Status {
        status: StatusCode,
        detail: Option<String>,
    },

    #[error("inventory returned 409 with a body that is not a JSON object")]
    UnreadableConflict,
}

/// A pooled HTTP/1.1 client for inventory's `PUT /inventory`.
#[derive(Debug, Clone)]
pub struct InventoryClient {
    client: Client<HttpConnector, Full<Bytes>>,
    outbound: SocketAddr,
    uri: Uri,
    host: HeaderValue,
    timeout: Duration,
}

impl InventoryClient {
    /// Creates a client that sends to `outbound` with `Host: host`, giving up on a call
    /// after `timeout` (connecting, sending and reading the response together).
    pub fn new(
        outbound: SocketAddr,
        host: HeaderValue,
        timeout: Duration,
    ) -> Result<Self, http::Error> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(outbound.to_string())
            .path_and_query("/inventory")
            .build()?;

        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);

        Ok(Self {
            client,
            outbound,
            uri,
            host,
            timeout,
        })
    }

    /// Asks the inventory to take the stock for `items`, sending the caller's
    /// `authorization` header values unchanged.
    pub async fn take_stock(
        &self,
        items: &ItemList,
        authorization: &[HeaderValue],
    ) -> Result<Reservation, InventoryError> {
        let body = serde_json::to_vec(items).map_err(|error| InventoryError::Failed {
            outbound: self.outbound,
            reason: format!("failed to serialize the items: {error}"),
        })?;

        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::PUT;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for value in authorization {
            headers.append(AUTHORIZATION, value.clone());
        }

        match tokio::time::timeout(self.timeout, self.send(request)).await {
            Ok(result) => result,
            Err(_) => Err(InventoryError::TimedOut {
                outbound: self.outbound,
                timeout: self.timeout,
            }),
        }
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reservation, InventoryError> {
        let response = self.client.request(request).await.map_err(|error| {
            let reason = describe_cause(&error);
            if error.is_connect() {
                InventoryError::Unreachable {
                    outbound: self.outbound,
                    reason,
                }
            } else {
                InventoryError::Failed {
                    outbound: self.outbound,
                    reason,
                }
            }
        })?;

        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|error| InventoryError::Failed {
                outbound: self.outbound,
                reason: format!("failed to read the response body: {error}"),
            })?
            .to_bytes();

        if status.is_success() {
            return Ok(Reservation::Taken);
        }
        if status == StatusCode::CONFLICT {
            return match serde_json::from_slice(&body) {
                Ok(serde_json::Value::Object(reason)) => Ok(Reservation::Insufficient(reason)),
                _ => Err(InventoryError::UnreadableConflict),
            };
        }
        Err(InventoryError::Status {
            status,
            detail: error_detail(&body),
        })
    }
}

/// Describes the root cause of a client error: the kind of an I/O error, such as
/// "connection refused", or else the chain of error messages.
fn describe_cause(error: &(dyn StdError + 'static)) -> String {
    let mut messages = Vec::new();
    let mut current = Some(error);
    while let Some(cause) = current {
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return io_error.kind().to_string();
        }
        messages.push(cause.to_string());
        current = cause.source();
    }
    messages.join(": ")
}

fn detail_suffix(detail: &Option<String>) -> String {
    match detail {
        Some(detail) => format!(": {detail}"),
        None => String::new(),
    }
}

/// Returns the `detail` string of a JSON error body, if it has one.
fn error_detail(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("detail")?.as_str().map(str::to_owned)
}
