//! Settings of the order app.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Settings of [`start`](crate::start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderConfig {
    /// The address of the HTTP listener. Default `127.0.0.1:8081`: loopback, because only
    /// the sidecar in the same pod or host may reach the app.
    pub listen: SocketAddr,

    /// The SQLite database file, created with its folder when missing. Default
    /// `portcullis-data/orders.db`, relative to the working directory.
    pub db_path: PathBuf,

    /// The sidecar's outbound listener, to which the app sends its call to the inventory.
    /// Default `127.0.0.1:15001`, the sidecar's default outbound address.
    pub outbound: SocketAddr,

    /// The `Host` header of the call to the inventory. The sidecar maps this name to the
    /// inventory's address. Default `inventory`.
    pub inventory_host: String,

    /// How long the app waits for the inventory, from connecting to reading the whole
    /// response. Must be greater than zero. Default 10 s: ample for a loopback hop and a
    /// mutual-TLS hop between sidecars, and short enough that a client is not left hanging.
    pub inventory_timeout: Duration,
}

impl Default for OrderConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8081)),
            db_path: PathBuf::from("portcullis-data/orders.db"),
            outbound: SocketAddr::from((Ipv4Addr::LOCALHOST, 15001)),
            inventory_host: "inventory".to_owned(),
            inventory_timeout: Duration::from_secs(10),
        }
    }
}
