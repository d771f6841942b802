//! The `order-app` binary: parses the command line and runs the order service until
//! SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use order_app::OrderConfig;

/// Demo order service. It has no security code and trusts the Portcullis sidecar in front
/// of it.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address of the HTTP listener.
    #[arg(long, value_name = "ADDR", env = "ORDER_APP_LISTEN", default_value_t = OrderConfig::default().listen)]
    listen: SocketAddr,

    /// SQLite database file, created when missing.
    #[arg(long = "db", value_name = "PATH", env = "ORDER_APP_DB", default_value_os_t = OrderConfig::default().db_path)]
    db_path: PathBuf,

    /// The sidecar's outbound listener, which forwards the call to the inventory.
    #[arg(long, value_name = "ADDR", env = "ORDER_APP_OUTBOUND", default_value_t = OrderConfig::default().outbound)]
    outbound: SocketAddr,

    /// Host header of the call to the inventory. The sidecar routes by this name.
    #[arg(long, value_name = "NAME", env = "ORDER_APP_INVENTORY_HOST", default_value_t = OrderConfig::default().inventory_host)]
    inventory_host: String,

    /// How long to wait for the inventory, in seconds (fractions allowed).
    #[arg(long, value_name = "SECONDS", env = "ORDER_APP_INVENTORY_TIMEOUT", default_value = "10", value_parser = parse_seconds)]
    inventory_timeout: Duration,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(format!("{text:?} must be greater than zero"));
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|error| format!("{text:?} is out of range: {error}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    apps_common::signal::init_tracing();
    let args = Args::parse();

    let config = OrderConfig {
        listen: args.listen,
        db_path: args.db_path,
        outbound: args.outbound,
        inventory_host: args.inventory_host,
        inventory_timeout: args.inventory_timeout,
    };
    let started = order_app::start(config).await;
    apps_common::signal::serve_until_signal("order-app", started).await
}
