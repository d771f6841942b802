//! The `inventory-app` binary: parses the command line and runs the inventory service
//! until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use inventory_app::InventoryConfig;

/// Demo inventory service. It has no security code and trusts the Portcullis sidecar in
/// front of it.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address of the HTTP listener.
    #[arg(long, value_name = "ADDR", env = "INVENTORY_APP_LISTEN", default_value_t = InventoryConfig::default().listen)]
    listen: SocketAddr,

    /// SQLite database file, created and seeded with stock when missing.
    #[arg(long = "db", value_name = "PATH", env = "INVENTORY_APP_DB", default_value_os_t = InventoryConfig::default().db_path)]
    db_path: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    apps_common::signal::init_tracing();
    let args = Args::parse();

    let config = InventoryConfig {
        listen: args.listen,
        db_path: args.db_path,
    };
    let started = inventory_app::start(config).await;
    apps_common::signal::serve_until_signal("inventory-app", started).await
}
