//! The error that stops an app from starting.

use std::io;
use std::net::SocketAddr;

use thiserror::Error;

use crate::sqlite::DatabaseError;

/// The error that stops an app from starting. Once an app is running, request failures become HTTP responses and
/// log lines instead.
#[derive(Debug, Error)]
pub enum AppError {
    #[error("failed to listen on {addr}: {source}; stop the process using it or choose another listen address")]
    Bind { addr: SocketAddr, source: io::Error },

    #[error("failed to read the local address of the listener on {addr}: {source}")]
    LocalAddr { addr: SocketAddr, source: io::Error },

    #[error("invalid {field} {value:?}: {reason}")]
    InvalidConfig {
        field: &'static str,
        value: String,
        reason: String,
    },

    #[error(transparent)]
    Database(#[from] DatabaseError),
}
