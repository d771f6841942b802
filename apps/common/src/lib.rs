//! Plumbing shared by the two demo apps, `order-app` and `inventory-app`.
//!
//! The apps contain no security code: the Portcullis sidecar in front of each one verifies
//! the caller's token and sets identity headers, so everything here is plain HTTP/1.1.
//!
//! - [`server`]: the accept loop, per-request logging and graceful shutdown ([`RunningApp`]).
//! - [`http`]: JSON responses, the `{"error", "detail"}` error shape, and reading a JSON
//!   request body with a size limit.
//! - [`json`]: parsing a body with serde into validated types, with errors that name the
//!   field path (`items[1].qty must be a positive integer`).
//! - [`items`]: the `{"code", "qty"}` item list that both apps accept.
//! - [`text`]: [`NonEmptyString`](text::NonEmptyString) for required text fields.
//! - [`sqlite`]: one SQLite connection used from blocking tasks.
//! - [`signal`]: tracing setup and the SIGTERM/SIGINT handling of the binaries.
//! - [`error`]: the startup error type, [`AppError`].
//! - `test_client` (feature `test-client`): an HTTP client for the apps' integration tests.

pub mod error;
pub mod http;
pub mod items;
pub mod json;
pub mod server;
pub mod signal;
pub mod sqlite;
#[cfg(feature = "test-client")]
pub mod test_client;
pub mod text;

pub use error::AppError;
pub use server::RunningApp;
