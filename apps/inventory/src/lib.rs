//! `inventory-app`: the demo inventory service that a Portcullis sidecar protects.
//!
//! It contains no security code. The sidecar in front of it verifies the caller's token,
//! so the app trusts every request that reaches it and listens on 127.0.0.1 by default.
//!
//! # HTTP API
//!
//! - `PUT /inventory` with `[{"code": "101", "qty": 1}, ...]` and
//!   `Content-Type: application/json` takes the stock for every item in one SQLite
//!   transaction. It returns 204 when all items were available. It returns 409 with
//!   `{"error": "insufficient_stock", "detail", "code", "requested", "available"}` for the
//!   first item that is short, and then takes nothing. It returns 400 for an empty list,
//!   invalid JSON, a missing or non-string `code`, a code the inventory does not stock, a
//!   `qty` that is not a positive integer, or a code listed twice. It returns 415 for a
//!   missing or non-JSON `Content-Type` and 413 for a body over 64 KiB. Unknown fields in
//!   an item are ignored.
//! - `GET /inventory/{code}` returns `{"code": "101", "qty": N}`, or 404.
//!
//! Other paths return 404 and other methods 405 with `Allow`. Every error body is
//! `{"error": "...", "detail": "..."}`.
//!
//! # Seed stock
//!
//! On first start, when the `stock` table is empty, the app stocks these items:
//!
//! | code | quantity | why |
//! | --- | --- | --- |
//! | 101, 102, 103 | 9,999 each | the book's order (101 x1, 103 x5) succeeds 1,999 times; 10,000 of any item gets 409 |
//! | 104 | 100 | |
//! | 105 | 2 | a small order such as `{"code": "105", "qty": 3}` shows a 409 |
//!
//! Deleting the database file restores the seed stock on the next start.
//!
//! # Modules
//!
//! - [`config`]: [`InventoryConfig`] and its defaults.
//! - `store`: the `stock` table, seeding, and the all-or-nothing stock update.
//! - `routes`: routing and the request handlers.

pub mod config;
mod routes;
mod store;

use std::sync::Arc;

pub use apps_common::{AppError, RunningApp};
pub use config::InventoryConfig;

use crate::store::StockStore;

/// Opens (and on first start seeds) the database, then serves the HTTP API on
/// `config.listen` until [`RunningApp::shutdown`]. Port 0 picks a free port, which
/// [`RunningApp::local_addr`] reports.
pub async fn start(config: InventoryConfig) -> Result<RunningApp, AppError> {
    let store = Arc::new(StockStore::open(&config.db_path).await?);
    apps_common::server::serve("inventory-app", config.listen, move |request| {
        routes::handle(Arc::clone(&store), request)
    })
    .await
}
