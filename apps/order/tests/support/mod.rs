//! Shared setup for the order-app integration tests: apps on 127.0.0.1 port 0 with
//! temporary databases, and a fake inventory that records what it receives.

#![allow(dead_code)] // Each test file uses a different part of this module.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apps_common::test_client::{json_request, send, TestResponse};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use inventory_app::InventoryConfig;
use order_app::{OrderConfig, RunningApp};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// The order body from *Microservices Security in Action*, unchanged.
pub const BOOK_ORDER: &str = r#"{"customer_id":"101021","payment_method":{"card_type":"VISA","expiration":"01/22","name":"John Doe","billing_address":"201, 1st Street, San Jose, CA"},"items":[{"code":"101","qty":1},{"code":"103","qty":5}],"shipping_address":"201, 1st Street, San Jose, CA"}"#;

pub fn loopback_port_zero() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// An order app whose `outbound` points at `outbound`, with its database in a temp dir.
pub struct OrderApp {
    pub app: RunningApp,
    pub db_path: PathBuf,
    _dir: TempDir,
}

impl OrderApp {
    pub async fn start(outbound: SocketAddr) -> Self {
        Self::start_with_timeout(outbound, OrderConfig::default().inventory_timeout).await
    }

    pub async fn start_with_timeout(outbound: SocketAddr, inventory_timeout: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("orders.db");
        let config = OrderConfig {
            listen: loopback_port_zero(),
            db_path: db_path.clone(),
            outbound,
            inventory_timeout,
            ..OrderConfig::default()
        };
        let app = order_app::start(config).await.unwrap();
        Self {
            app,
            db_path,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.app.local_addr()
    }

    /// Sends `POST /orders` with `body` and the given extra headers.
    pub async fn post_order(&self, body: &str, headers: &[(&str, &str)]) -> TestResponse {
        let mut request = json_request(Method::POST, "/orders", body);
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().append(name, value.parse().unwrap());
        }
        send(self.addr(), request).await
    }

    /// Counts the rows of `orders` and `order_items`, reading the database file directly.
    pub fn stored_rows(&self) -> (i64, i64) {
        let connection = rusqlite::Connection::open(&self.db_path).unwrap();
        let count = |table: &str| {
            connection
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                    row.get(0)
                })
                .unwrap()
        };
        (count("orders"), count("order_items"))
    }
}

/// A real inventory app with its database in a temp dir.
pub struct InventoryApp {
    pub app: inventory_app::RunningApp,
    _dir: TempDir,
}

impl InventoryApp {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = InventoryConfig {
            listen: loopback_port_zero(),
            db_path: dir.path().join("inventory.db"),
        };
        let app = inventory_app::start(config).await.unwrap();
        Self { app, _dir: dir }
    }

    pub fn addr(&self) -> SocketAddr {
        self.app.local_addr()
    }

    pub async fn stock_of(&self, code: &str) -> i64 {
        let request =
            apps_common::test_client::empty_request(Method::GET, &format!("/inventory/{code}"));
        let response = send(self.addr(), request).await;
        assert_eq!(response.status, StatusCode::OK, "GET /inventory/{code}");
        response.json()["qty"].as_i64().unwrap()
    }
}

/// A request as the fake inventory received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How the fake inventory responds.
#[derive(Clone)]
pub enum FakeBehavior {
    /// Responds at once with this status and JSON body (empty for none).
    Respond(StatusCode, &'static str),
    /// Waits until `release` is notified, then responds 204. `arrived` is notified when a
    /// request comes in.
    WaitForRelease {
        arrived: Arc<Notify>,
        release: Arc<Notify>,
    },
    /// Never responds.
    Hang,
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that fakes the inventory.
pub struct FakeInventory {
    pub addr: SocketAddr,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
    accept_loop: JoinHandle<()>,
}

impl FakeInventory {
    pub async fn start(behavior: FakeBehavior) -> Self {
        let listener = TcpListener::bind(loopback_port_zero()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorded = Arc::new(Mutex::new(Vec::new()));

        let accept_recorded = Arc::clone(&recorded);
        let accept_loop = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = Arc::clone(&accept_recorded);
                let behavior = behavior.clone();
                let service = service_fn(move |request| {
                    respond(request, behavior.clone(), Arc::clone(&recorded))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });

        Self {
            addr,
            recorded,
            accept_loop,
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorded.lock().unwrap().clone()
    }
}

impl Drop for FakeInventory {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn respond(
    request: Request<Incoming>,
    behavior: FakeBehavior,
    recorded: Arc<Mutex<Vec<RecordedRequest>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    recorded.lock().unwrap().push(RecordedRequest {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
    });

    let (status, body) = match behavior {
        FakeBehavior::Respond(status, body) => (status, body),
        FakeBehavior::WaitForRelease { arrived, release } => {
            arrived.notify_one();
            release.notified().await;
            (StatusCode::NO_CONTENT, "")
        }
        FakeBehavior::Hang => std::future::pending().await,
    };

    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    if !body.is_empty() {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            "application/json".parse().unwrap(),
        );
    }
    Ok(response)
}

/// Returns a loopback address on which nothing listens: the port was free a moment ago.
pub async fn unused_loopback_addr() -> SocketAddr {
    let listener = TcpListener::bind(loopback_port_zero()).await.unwrap();
    listener.local_addr().unwrap()
}
