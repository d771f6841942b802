//! The demo's ports and the sidecar configuration files it writes into its data folder.
//!
//! The files are ordinary `portcullis --config` files, so a reader can open them, change
//! them, and run the same sidecars by hand.

use std::net::SocketAddr;
use std::path::Path;

use crate::certs::DemoCerts;
use crate::sidecar_config::{SidecarConfig, SidecarRole};

/// Every port the demo listens on, all on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoPorts {
    pub sts: u16,
    pub order_app: u16,
    pub inventory_app: u16,
    pub orders_inbound: u16,
    pub orders_admin: u16,
    pub orders_outbound: u16,
    pub inventory_inbound: u16,
    pub inventory_admin: u16,
}

impl DemoPorts {
    /// Returns the ports of *Microservices Security in Action*: STS 8443, order service 9443,
    /// inventory 10443, plus the apps and admin listeners beside them.
    pub fn book() -> DemoPorts {
        DemoPorts {
            sts: 8443,
            order_app: 8081,
            inventory_app: 8082,
            orders_inbound: 9443,
            orders_admin: 9901,
            orders_outbound: 15001,
            inventory_inbound: 10443,
            inventory_admin: 9902,
        }
    }

    /// Takes the ports in field order, for tests that choose free ports themselves.
    pub fn from_list(ports: [u16; 8]) -> DemoPorts {
        let [sts, order_app, inventory_app, orders_inbound, orders_admin, orders_outbound, inventory_inbound, inventory_admin] =
            ports;
        DemoPorts {
            sts,
            order_app,
            inventory_app,
            orders_inbound,
            orders_admin,
            orders_outbound,
            inventory_inbound,
            inventory_admin,
        }
    }

    /// Returns the loopback address of `port`.
    pub fn local(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

/// The issuer the demo STS writes into every token, as in the book.
pub const ISSUER: &str = "https://localhost:8443";

/// Folder of the demo certificates, relative to the data folder.
const CERTS_DIR: &str = "certs";
/// The sidecar configuration files, in the data folder.
const ORDERS_FILE: &str = "orders-sidecar.toml";
const INVENTORY_FILE: &str = "inventory-sidecar.toml";

/// Returns the configuration file of the demo sidecar in `role`. Certificate paths are
/// relative to the data folder, where the file is written.
fn demo_sidecar_toml(ports: &DemoPorts, role: SidecarRole) -> String {
    let (app, file_name, listen, upstream, admin) = match role {
        SidecarRole::Orders { .. } => (
            "order",
            ORDERS_FILE,
            ports.orders_inbound,
            ports.order_app,
            ports.orders_admin,
        ),
        SidecarRole::Inventory => (
            "inventory",
            INVENTORY_FILE,
            ports.inventory_inbound,
            ports.inventory_app,
            ports.inventory_admin,
        ),
    };
    SidecarConfig {
        role,
        header: vec![
            format!("Sidecar in front of the {app} app, written by portcullis-demo."),
            format!("Run it by hand with: portcullis --config {file_name}"),
        ],
        shutdown_grace_secs: 5,
        listen: DemoPorts::local(listen),
        upstream: DemoPorts::local(upstream),
        admin: DemoPorts::local(admin),
        issuer: ISSUER.to_owned(),
        jwks_uri: format!("https://127.0.0.1:{}/.well-known/jwks.json", ports.sts),
        certs: &DemoCerts::paths(Path::new(CERTS_DIR)),
    }
    .render()
}

/// Returns the configuration of the sidecar in front of the order app. Paths are relative
/// to the data folder, where the file is written.
pub fn orders_sidecar_toml(ports: &DemoPorts) -> String {
    let role = SidecarRole::Orders {
        outbound_listen: DemoPorts::local(ports.orders_outbound),
        inventory_url: format!("https://localhost:{}", ports.inventory_inbound),
    };
    demo_sidecar_toml(ports, role)
}

/// Returns the configuration of the sidecar in front of the inventory app, which accepts
/// only clients with a certificate from the demo CA.
pub fn inventory_sidecar_toml(ports: &DemoPorts) -> String {
    demo_sidecar_toml(ports, SidecarRole::Inventory)
}

/// Writes both sidecar files into `data_dir` and returns their paths (orders, inventory).
pub fn write_sidecar_configs(
    data_dir: &Path,
    ports: &DemoPorts,
) -> Result<(std::path::PathBuf, std::path::PathBuf), crate::certs::CertError> {
    let orders = data_dir.join(ORDERS_FILE);
    let inventory = data_dir.join(INVENTORY_FILE);
    crate::certs::write_file(&orders, orders_sidecar_toml(ports).as_bytes(), 0o644)?;
    crate::certs::write_file(&inventory, inventory_sidecar_toml(ports).as_bytes(), 0o644)?;
    Ok((orders, inventory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_configs_are_valid() {
        let ports = DemoPorts::book();
        let base = Path::new("/data");
        let orders = portcullis::config::Config::from_toml(&orders_sidecar_toml(&ports), base)
            .expect("orders sidecar config is valid");
        assert_eq!(orders.inbound.listen.port(), 9443);
        let outbound = orders
            .outbound
            .expect("orders sidecar has an outbound listener");
        assert_eq!(outbound.services[0].name, "inventory");

        let inventory =
            portcullis::config::Config::from_toml(&inventory_sidecar_toml(&ports), base)
                .expect("inventory sidecar config is valid");
        let tls = inventory.inbound.tls.expect("inventory sidecar uses TLS");
        assert_eq!(tls.client_ca, Some(base.join("certs/ca.pem")));
    }
}
