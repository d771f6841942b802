//! The `portcullis-sts` command: serves the token service, rotates its signing key, or
//! hashes a secret for the configuration file.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use zeroize::Zeroizing;

use portcullis_sts::{hash_secret, rotate_key, start, StsConfig};

/// OAuth 2.0 token service that issues JWT access tokens for Portcullis sidecars.
///
/// Without a subcommand, serves HTTPS until SIGTERM or SIGINT.
#[derive(Debug, Parser)]
#[command(name = "portcullis-sts", version)]
struct Cli {
    /// TOML configuration file; without it, the built-in demo configuration applies.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,

    /// Directory for signing keys and generated TLS files; overrides `data_dir`.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,

    /// Address to listen on, such as 127.0.0.1:8443; overrides `listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a secret from standard input and print its Argon2id PHC hash for the
    /// `secret_hash` or `password_hash` fields.
    HashPassword,
    /// Add a new signing key that signs from now on; the old key stays in the JWKS until the
    /// tokens it signed have expired. A running service picks the new key up by itself.
    RotateKey,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Some(Command::HashPassword) => {
            reject_listen(&cli.listen)?;
            hash_password()
        }
        Some(Command::RotateKey) => {
            reject_listen(&cli.listen)?;
            let config = load_config(cli.config, cli.data_dir, None)?;
            let kid = rotate_key(&config).map_err(|error| error.to_string())?;
            println!("{kid}");
            Ok(())
        }
        None => {
            let config = load_config(cli.config, cli.data_dir, cli.listen)?;
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|error| format!("failed to start the tokio runtime: {error}"))?;
            runtime.block_on(serve(config))
        }
    }
}

fn reject_listen(listen: &Option<SocketAddr>) -> Result<(), String> {
    match listen {
        Some(_) => Err("--listen applies only when serving; remove it".to_owned()),
        None => Ok(()),
    }
}

fn load_config(
    path: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
) -> Result<StsConfig, String> {
    let mut config = match path {
        Some(path) => StsConfig::from_file(&path).map_err(|error| error.to_string())?,
        None => {
            info!("no --config given, using the built-in demo configuration");
            StsConfig::default()
        }
    };
    if let Some(data_dir) = data_dir {
        config.data_dir = data_dir;
    }
    if let Some(listen) = listen {
        config.listen = listen;
    }
    Ok(config)
}

/// Serves until SIGTERM or SIGINT. The signal handlers are installed before the listener
/// starts, so a signal sent as soon as the address is logged still shuts down gracefully.
async fn serve(config: StsConfig) -> Result<(), String> {
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|error| format!("failed to listen for SIGTERM: {error}"))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|error| format!("failed to listen for SIGINT: {error}"))?;

    let running = start(config).await.map_err(|error| error.to_string())?;

    let received = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    info!(signal = received, "shutting down");
    running.shutdown().await;
    Ok(())
}

/// Reads the secret, without its final line break, and prints the hash on standard output.
/// From a terminal it reads one line; note that the terminal echoes what is typed.
fn hash_password() -> Result<(), String> {
    let stdin = io::stdin();
    let mut secret = Zeroizing::new(String::new());
    if stdin.is_terminal() {
        eprint!("Secret to hash (shown as typed): ");
        // The prompt is only a convenience, so a failed flush is not an error.
        let _ = io::stderr().flush();
        stdin
            .lock()
            .read_line(&mut secret)
            .map_err(|error| format!("failed to read the secret from standard input: {error}"))?;
    } else {
        stdin
            .lock()
            .read_to_string(&mut secret)
            .map_err(|error| format!("failed to read the secret from standard input: {error}"))?;
    }
    let secret = secret
        .strip_suffix("\r\n")
        .or_else(|| secret.strip_suffix('\n'))
        .unwrap_or(&secret);
    if secret.is_empty() {
        return Err("the secret is empty; pipe it in, as in: printf '%s' 'secret' | portcullis-sts hash-password".to_owned());
    }
    let hash = hash_secret(secret).map_err(|error| error.to_string())?;
    println!("{hash}");
    Ok(())
}

/// Logs to standard error, at `info` unless `RUST_LOG` sets another filter.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}
