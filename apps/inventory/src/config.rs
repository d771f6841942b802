//! Settings of the inventory app.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Settings of [`start`](crate::start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryConfig {
    /// The address of the HTTP listener. Default `127.0.0.1:8082`: loopback, because only
    /// the sidecar in the same pod or host may reach the app.
    pub listen: SocketAddr,

    /// The SQLite database file, created with its folder when missing. Default
    /// `portcullis-data/inventory.db`, relative to the working directory.
    pub db_path: PathBuf,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8082)),
            db_path: PathBuf::from("portcullis-data/inventory.db"),
        }
    }
}
