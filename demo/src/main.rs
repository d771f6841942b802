//! `portcullis-demo`: runs the whole system locally on the book's ports.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use portcullis_demo::certs::DemoCerts;
use portcullis_demo::walkthrough::BOOK_ORDER;
use portcullis_demo::{DemoOptions, RunningDemo};

/// Runs the STS, the order and inventory apps, and their Portcullis sidecars on 127.0.0.1.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Folder for the demo CA and certificates, STS signing keys, databases and the generated
    /// sidecar configuration files; created on first start and reused afterwards.
    #[arg(long, default_value = "portcullis-data")]
    data_dir: PathBuf,

    /// Run the book's flow against the demo, print each step, and exit: status 0 when every
    /// step behaved as expected, 1 otherwise.
    #[arg(long)]
    walkthrough: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create the demo CA and its certificates in a folder, then exit, for containers and
    /// Kubernetes Secrets. Reuses a complete set issued for the same names.
    ///
    /// Writes ca.pem, then NAME.pem and NAME-key.pem for sts, orders, inventory (server
    /// certificates) and orders-client (the order sidecar's client certificate for mutual
    /// TLS). Keys get mode 0600.
    Certs {
        /// Folder to write the files into, created when missing.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,

        /// Names the certificates are valid for besides localhost, 127.0.0.1 and ::1:
        /// DNS names or IP addresses, separated by commas.
        #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
        names: Vec<String>,
    },
}

/// How long the sidecars may take to fetch the STS's keys at startup.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,portcullis_demo=info".into()),
        )
        .init();
    let args = Args::parse();
    if let Some(Command::Certs { out, names }) = &args.command {
        return write_certs(out, names);
    }

    let demo = match portcullis_demo::start(DemoOptions::book(args.data_dir.clone())).await {
        Ok(demo) => demo,
        Err(err) => {
            eprintln!("error: {err}");
            eprintln!("If a port is in use, stop the program using it (or an earlier demo) and try again.");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = demo.wait_ready(READY_TIMEOUT).await {
        eprintln!("error: {err}");
        demo.shutdown().await;
        return ExitCode::FAILURE;
    }

    if args.walkthrough {
        let result = portcullis_demo::walkthrough::run(&demo).await;
        demo.shutdown().await;
        return match result {
            Ok(0) => {
                println!("\nEvery step behaved as expected.");
                ExitCode::SUCCESS
            }
            Ok(failures) => {
                println!("\n{failures} step(s) failed.");
                ExitCode::FAILURE
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        };
    }

    print_instructions(&demo);
    wait_for_signal().await;
    println!("Stopping the demo...");
    demo.shutdown().await;
    ExitCode::SUCCESS
}

fn write_certs(out: &std::path::Path, names: &[String]) -> ExitCode {
    match DemoCerts::load_or_create_with_names(out, names) {
        Ok(certs) => {
            println!(
                "Demo certificates in {}: CA {}; server certificates for localhost, 127.0.0.1, ::1{}",
                out.display(),
                certs.ca.display(),
                names.iter().map(|name| format!(", {name}")).collect::<String>(),
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn print_instructions(demo: &RunningDemo) {
    let ports = &demo.ports;
    println!(
        r#"
Portcullis demo is running. Data folder: {data}

  STS               https://localhost:{sts}  (POST /oauth/token, /.well-known/jwks.json)
  order service     https://localhost:{orders}  (sidecar; app on 127.0.0.1:{order_app})
  inventory service https://localhost:{inventory}  (sidecar, mutual TLS; app on 127.0.0.1:{inventory_app})
  sidecar admin     http://127.0.0.1:{orders_admin}/metrics and http://127.0.0.1:{inventory_admin}/metrics

Sidecar configuration files: {orders_config} and {inventory_config}
The certificates come from a demo CA ({ca}); use curl -k as in the book, or --cacert with that file.

Get a token (chapter 10):

  curl -v -X POST --basic -u applicationid:applicationsecret -H "Content-Type: application/x-www-form-urlencoded;charset=UTF-8" -k -d "grant_type=password&username=peter&password=peter123&scope=foo" https://localhost:{sts}/oauth/token

  export TOKEN=<the access_token from the response>

Place an order through the order service's sidecar:

  curl -k -X POST https://localhost:{orders}/orders -H "Content-Type: application/json" -H "Authorization: Bearer $TOKEN" -d '{order}'

Read it back with the order_id from the response:

  curl -k https://localhost:{orders}/orders/ORDER_ID -H "Authorization: Bearer $TOKEN"

Press Ctrl-C to stop."#,
        data = demo.data_dir.display(),
        sts = ports.sts,
        orders = ports.orders_inbound,
        order_app = ports.order_app,
        inventory = ports.inventory_inbound,
        inventory_app = ports.inventory_app,
        orders_admin = ports.orders_admin,
        inventory_admin = ports.inventory_admin,
        orders_config = demo.orders_config.display(),
        inventory_config = demo.inventory_config.display(),
        ca = demo.certs.ca.display(),
        order = BOOK_ORDER,
    );
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_signal() {
    let mut terminate = match tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::terminate(),
    ) {
        Ok(signal) => signal,
        Err(err) => {
            tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the demo");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
