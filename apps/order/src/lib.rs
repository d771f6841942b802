//! `order-app`: the demo order service that a Portcullis sidecar protects.
//!
//! It contains no security code. The sidecar in front of it verifies the caller's token,
//! removes identity headers a client could forge, and sets `X-Portcullis-Subject` to the
//! token's subject, so the app trusts every request that reaches it and listens on
//! 127.0.0.1 by default.
//!
//! # HTTP API
//!
//! - `POST /orders` with `Content-Type: application/json` and the body
//!   `{"customer_id", "payment_method": {"card_type", "expiration", "name",
//!   "billing_address"}, "items": [{"code", "qty"}, ...], "shipping_address"}` creates an
//!   order. Every string must be non-empty, `expiration` must be `MM/YY` (a past date is
//!   fine), and each item code may appear once with a positive `qty`. Unknown fields are
//!   ignored. The app then sends `PUT /inventory` with the items through the sidecar's
//!   outbound listener, copying the caller's `Authorization` header. Responses:
//!   - 201 with `Location: /orders/{order_id}` and the order: `order_id`, the request
//!     fields, `status` (`"created"`), `created_by` (the subject header, or null) and
//!     `created_at`.
//!   - 400 naming the bad field (`items[1].qty must be a positive integer`), 413 for a
//!     body over 64 KiB, 415 for a missing or non-JSON `Content-Type`.
//!   - 409 with the inventory's body when an item is short.
//!   - 502 when the inventory is unreachable, times out, or returns any status other than
//!     2xx and 409 (`inventory returned 401`). An unknown item code is in this group,
//!     because only the inventory has the list of codes. The detail carries its reason.
//!
//!   Nothing is stored unless the inventory took the stock.
//! - `GET /orders/{id}` returns the stored order, or 404.
//! - `GET /orders/{id}/status` returns `{"order_id", "status"}`, or 404.
//!
//! Other paths return 404 and other methods 405 with `Allow`. Every error body is
//! `{"error": "...", "detail": "..."}`.
//!
//! # Modules
//!
//! - [`config`]: [`OrderConfig`] and its defaults.
//! - [`order`]: the request and response types, which validate while parsing.
//! - `inventory`: the call to the inventory through the sidecar.
//! - `store`: the `orders` and `order_items` tables.
//! - `routes`: routing and the request handlers.

pub mod config;
mod inventory;
pub mod order;
mod routes;
mod store;

use std::sync::Arc;

use http::uri::Authority;
use http::HeaderValue;

pub use apps_common::{AppError, RunningApp};
pub use config::OrderConfig;

use crate::inventory::InventoryClient;
use crate::routes::AppState;
use crate::store::OrderStore;

/// Checks the configuration, opens the database, then serves the HTTP API on
/// `config.listen` until [`RunningApp::shutdown`]. Port 0 picks a free port, which
/// [`RunningApp::local_addr`] reports.
pub async fn start(config: OrderConfig) -> Result<RunningApp, AppError> {
    let inventory = inventory_client(&config)?;
    let store = OrderStore::open(&config.db_path).await?;

    let state = Arc::new(AppState { store, inventory });
    apps_common::server::serve("order-app", config.listen, move |request| {
        routes::handle(Arc::clone(&state), request)
    })
    .await
}

fn inventory_client(config: &OrderConfig) -> Result<InventoryClient, AppError> {
    let invalid_host = |reason: &str| AppError::InvalidConfig {
        field: "inventory_host",
        value: config.inventory_host.clone(),
        reason: reason.to_owned(),
    };
    // A Host value is a URI authority: a name with an optional port, such as `inventory`.
    if config.inventory_host.parse::<Authority>().is_err() {
        return Err(invalid_host(
            "it must be a host name with an optional port, such as inventory",
        ));
    }
    let host = HeaderValue::from_str(&config.inventory_host)
        .map_err(|_| invalid_host("it must be a valid Host header value, such as inventory"))?;

    if config.inventory_timeout.is_zero() {
        return Err(AppError::InvalidConfig {
            field: "inventory_timeout",
            value: format!("{:?}", config.inventory_timeout),
            reason: "it must be greater than zero".to_owned(),
        });
    }

    InventoryClient::new(config.outbound, host, config.inventory_timeout).map_err(|error| {
        AppError::InvalidConfig {
            field: "outbound",
            value: config.outbound.to_string(),
            reason: error.to_string(),
        }
    })
}
