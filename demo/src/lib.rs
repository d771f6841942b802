//! The Portcullis demo: the STS, the order and inventory apps, and a sidecar in front of each
//! app, all in one process on 127.0.0.1, wired as in *Microservices Security in Action*
//! chapters 10 and 11.
//!
//! - [`certs`]: the demo CA and the certificates it issues.
//! - [`layout`]: ports and the sidecar configuration files.
//! - [`sidecar_config`]: the TOML of one sidecar configuration file.
//! - [`client`]: an HTTPS client that trusts the demo CA.
//! - [`walkthrough`]: the book's flow, run step by step and checked.

pub mod certs;
pub mod client;
pub mod layout;
pub mod sidecar_config;
pub mod walkthrough;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portcullis_sts::config::TlsMode;

use crate::certs::DemoCerts;
use crate::client::DemoClient;
use crate::layout::{DemoPorts, ISSUER};

/// Options of a demo run: its data folder, its ports, and which apps it starts.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Certificates, STS keys, databases and the generated sidecar configuration files.
    pub data_dir: PathBuf,
    pub ports: DemoPorts,
    /// Whether to run the inventory app. Tests set this to false to put their own server on
    /// `ports.inventory_app` and see exactly what the inventory sidecar forwards.
    pub run_inventory_app: bool,
}

impl DemoOptions {
    /// Returns the options of the book's demo, on the book's ports.
    pub fn book(data_dir: PathBuf) -> DemoOptions {
        DemoOptions {
            data_dir,
            ports: DemoPorts::book(),
            run_inventory_app: true,
        }
    }
}

/// A failure to start the demo, naming the component.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot create {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    #[error("the STS failed to start: {0}")]
    Sts(#[from] portcullis_sts::StsError),
    #[error("the {name} app failed to start: {message}")]
    App { name: &'static str, message: String },
    #[error("the {name} sidecar failed to start: {message}")]
    Sidecar { name: &'static str, message: String },
    #[error("{0} did not become ready within {1:?}; see the log lines above for the cause")]
    NotReady(String, Duration),
    #[error(transparent)]
    Client(#[from] client::ClientError),
}

/// Every component of a running demo.
pub struct RunningDemo {
    pub ports: DemoPorts,
    pub certs: DemoCerts,
    pub data_dir: PathBuf,
    pub orders_config: PathBuf,
    pub inventory_config: PathBuf,
    sts: portcullis_sts::RunningSts,
    inventory_app: Option<inventory_app::RunningApp>,
    order_app: order_app::RunningApp,
    inventory_sidecar: portcullis::RunningSidecar,
    orders_sidecar: portcullis::RunningSidecar,
}

/// Starts the STS, both apps and both sidecars. Returns once everything listens; call
/// [`RunningDemo::wait_ready`] to wait until the sidecars have the STS's keys.
pub async fn start(options: DemoOptions) -> Result<RunningDemo, DemoError> {
    let data_dir = options.data_dir;
    let ports = options.ports;
    std::fs::create_dir_all(&data_dir).map_err(|source| DemoError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let certs = DemoCerts::load_or_create(&data_dir.join("certs"))?;
    let (orders_config, inventory_config) = layout::write_sidecar_configs(&data_dir, &ports)?;

    let sts = portcullis_sts::start(portcullis_sts::StsConfig {
        listen: DemoPorts::local(ports.sts),
        issuer: ISSUER.to_owned(),
        data_dir: data_dir.join("sts"),
        tls: TlsMode::Files {
            cert: certs.sts.cert.clone(),
            key: certs.sts.key.clone(),
        },
        ..portcullis_sts::StsConfig::default()
    })
    .await?;

    let inventory_app = match options.run_inventory_app {
        true => Some(
            inventory_app::start(inventory_app::InventoryConfig {
                listen: DemoPorts::local(ports.inventory_app),
                db_path: data_dir.join("inventory.db"),
            })
            .await
            .map_err(|err| DemoError::App {
                name: "inventory",
                message: err.to_string(),
            })?,
        ),
        false => None,
    };

    let order_app = order_app::start(order_app::OrderConfig {
        listen: DemoPorts::local(ports.order_app),
        db_path: data_dir.join("orders.db"),
        outbound: DemoPorts::local(ports.orders_outbound),
        inventory_host: "inventory".to_owned(),
        ..order_app::OrderConfig::default()
    })
    .await
    .map_err(|err| DemoError::App {
        name: "order",
        message: err.to_string(),
    })?;

    let inventory_sidecar = start_sidecar("inventory", &inventory_config).await?;
    let orders_sidecar = start_sidecar("orders", &orders_config).await?;

    Ok(RunningDemo {
        ports,
        certs,
        data_dir,
        orders_config,
        inventory_config,
        sts,
        inventory_app,
        order_app,
        inventory_sidecar,
        orders_sidecar,
    })
}

async fn start_sidecar(
    name: &'static str,
    config_path: &Path,
) -> Result<portcullis::RunningSidecar, DemoError> {
    let sidecar_error = |message: String| DemoError::Sidecar { name, message };
    let config = portcullis::config::Config::from_file(config_path)
        .map_err(|err| sidecar_error(err.to_string()))?;
    portcullis::start(config)
        .await
        .map_err(|err| sidecar_error(err.to_string()))
}

impl RunningDemo {
    /// Waits until both sidecars return 200 from `/readyz`, polling every 100 ms.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), DemoError> {
        let client = DemoClient::new(&self.certs.ca, None)?;
        let deadline = Instant::now() + timeout;
        for (name, port) in [
            ("the orders sidecar", self.ports.orders_admin),
            ("the inventory sidecar", self.ports.inventory_admin),
        ] {
            let url = format!("http://127.0.0.1:{port}/readyz");
            loop {
                let ready = client
                    .send(http::Method::GET, &url, &[], bytes::Bytes::new())
                    .await
                    .map(|reply| reply.status == http::StatusCode::OK)
                    .unwrap_or(false);
                if ready {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(DemoError::NotReady(name.to_owned(), timeout));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Returns the base URL of the STS, such as `https://localhost:8443`.
    pub fn sts_url(&self) -> String {
        format!("https://localhost:{}", self.ports.sts)
    }

    /// Returns the base URL of the order service's sidecar.
    pub fn orders_url(&self) -> String {
        format!("https://localhost:{}", self.ports.orders_inbound)
    }

    /// Returns the base URL of the inventory service's sidecar (mutual TLS).
    pub fn inventory_url(&self) -> String {
        format!("https://localhost:{}", self.ports.inventory_inbound)
    }

    /// Adds a new STS signing key while everything runs, as `portcullis-sts rotate-key` does.
    pub fn rotate_sts_key(&self) -> Result<String, DemoError> {
        let config = portcullis_sts::StsConfig {
            data_dir: self.data_dir.join("sts"),
            ..portcullis_sts::StsConfig::default()
        };
        Ok(portcullis_sts::rotate_key(&config)?)
    }

    /// Stops every component, front to back, letting in-flight requests finish.
    pub async fn shutdown(self) {
        self.orders_sidecar.shutdown().await;
        self.inventory_sidecar.shutdown().await;
        self.order_app.shutdown().await;
        if let Some(app) = self.inventory_app {
            app.shutdown().await;
        }
        self.sts.shutdown().await;
    }
}
