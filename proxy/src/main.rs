//! The `portcullis` binary: runs one sidecar from a config file, or checks a config file.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use portcullis::config::Config;
use portcullis::shutdown::{ReloadSignal, Signals};
use portcullis::RunningSidecar;

/// A sidecar proxy that verifies JWT bearer tokens before requests reach the app behind it.
#[derive(Parser)]
#[command(version, subcommand_negates_reqs = true)]
struct Cli {
    /// Run the sidecar with this TOML config file.
    ///
    /// SIGHUP rereads the file and applies it without dropping connections; an invalid file
    /// is logged and the running configuration stays. SIGTERM or SIGINT drains and exits.
    /// Relative paths inside the file resolve against its folder. The environment variables
    /// PORTCULLIS_INBOUND_LISTEN, PORTCULLIS_INBOUND_UPSTREAM, PORTCULLIS_ADMIN_LISTEN and
    /// PORTCULLIS_OUTBOUND_LISTEN override the listen and upstream addresses in it. Logging
    /// follows RUST_LOG (default `info`).
    #[arg(long, value_name = "FILE", required = true)]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and the TLS files it names, then exit.
    ///
    /// Prints a one-line summary and exits with status 0 when the file is valid. Otherwise it
    /// prints the error, naming the field, and exits with status 1.
    CheckConfig {
        /// Path of the TOML config file to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Add the sidecar to Kubernetes manifests whose pods opt in with the annotation
    /// `portcullis.io/inject: enabled`.
    ///
    /// Reads Deployments, StatefulSets, DaemonSets and Pods (several documents and `List`
    /// documents allowed) and writes them to standard output with the sidecar added as a
    /// native sidecar container. Everything else is written back unchanged, byte for byte.
    Inject(portcullis::inject::cli::InjectArgs),
    /// Serve the mutating admission webhook that injects the sidecar into pods at creation.
    Injector(portcullis::inject::cli::InjectorArgs),
    /// Check that a sidecar is ready: GET its `/readyz` and exit 0 on status 200, 1 otherwise.
    ///
    /// For container health checks in images without a shell or curl.
    Probe {
        /// The http:// URL to check.
        #[arg(value_name = "URL", default_value = portcullis::probe::DEFAULT_URL)]
        url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match (cli.command, cli.config) {
        (Some(Command::CheckConfig { file }), _) => check_config(&file),
        (Some(Command::Inject(args)), _) => portcullis::inject::cli::run_inject(&args),
        (Some(Command::Injector(args)), _) => {
            init_logging();
            portcullis::inject::cli::run_injector(args)
        }
        (Some(Command::Probe { url }), _) => match portcullis::probe::probe(&url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        },
        (None, Some(file)) => run(&file),
        // clap enforces `--config` when no subcommand is given.
        (None, None) => ExitCode::FAILURE,
    }
}

fn check_config(path: &Path) -> ExitCode {
    let config = match Config::from_file(path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = portcullis::sidecar::check_files(&config) {
        eprintln!("error: {}: {err}", path.display());
        return ExitCode::FAILURE;
    }
    println!("{}: {}", path.display(), summary(&config));
    ExitCode::SUCCESS
}

/// Builds the one-line summary of what the sidecar would run, such as `valid: inbound 0.0.0.0:9443 (TLS) ->
/// http://127.0.0.1:8081, 1 provider, 2 routes, outbound 127.0.0.1:15001 (1 service), admin
/// 127.0.0.1:9901`.
fn summary(config: &Config) -> String {
    let inbound_tls = match &config.inbound.tls {
        Some(tls) if tls.client_ca.is_some() => " (mutual TLS)",
        Some(_) => " (TLS)",
        None => "",
    };
    let outbound = match &config.outbound {
        Some(outbound) => format!(
            ", outbound {} ({})",
            outbound.listen,
            plural(outbound.services.len(), "service")
        ),
        None => String::new(),
    };
    format!(
        "valid: inbound {}{inbound_tls} -> {}, {}, {}{outbound}, admin {}",
        config.inbound.listen,
        config.inbound.upstream,
        plural(config.providers.len(), "provider"),
        plural(config.routes.len(), "route"),
        config.admin.listen,
    )
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn run(path: &Path) -> ExitCode {
    init_logging();
    // Code paths that build rustls configs without an explicit provider use the process
    // default. The crate enables only `ring`, so that is the one installed. An `Err` means a
    // provider is already installed, which works as well.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let config = match Config::from_file(path) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!(error = %err, "invalid configuration");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match build_runtime(config.worker_threads) {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(path, config))
}

/// Builds the async runtime for `worker_threads` (see [`Config::worker_threads`]). Without a
/// configured count, tokio uses one thread per CPU, or `TOKIO_WORKER_THREADS` when it is set.
fn build_runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(count) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(count);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

async fn serve(path: &Path, config: Config) -> ExitCode {
    // Registered before the listeners open, so a signal sent right after startup drains or
    // reloads instead of killing the process.
    let signals = Signals::register().and_then(|signals| Ok((signals, ReloadSignal::register()?)));
    let (mut signals, mut reload) = match signals {
        Ok(signals) => signals,
        Err(err) => {
            tracing::error!(error = %err, "cannot install SIGTERM/SIGINT/SIGHUP handlers");
            return ExitCode::FAILURE;
        }
    };
    let mut sidecar = match portcullis::start(config).await {
        Ok(sidecar) => sidecar,
        Err(err) => {
            tracing::error!(error = %err, "failed to start");
            return ExitCode::FAILURE;
        }
    };

    let signal = loop {
        tokio::select! {
            signal = signals.recv() => break signal,
            () = reload.recv() => {
                // A termination signal during a reload wins; the reload changes nothing
                // until its last step, so abandoning it leaves the old configuration.
                tokio::select! {
                    () = reload_config(&mut sidecar, path) => {}
                    signal = signals.recv() => break signal,
                }
            }
        }
    };
    tracing::info!(signal, "received signal; draining connections");
    tokio::select! {
        () = sidecar.shutdown() => ExitCode::SUCCESS,
        second = signals.recv() => {
            tracing::warn!(signal = second, "received a second signal; exiting without waiting for the drain");
            ExitCode::FAILURE
        }
    }
}

/// Rereads the config file and applies it, or logs why not and keeps the running one.
async fn reload_config(sidecar: &mut RunningSidecar, path: &Path) {
    tracing::info!(config = %path.display(), "received SIGHUP; reloading the configuration");
    let result = match Config::from_file(path) {
        Ok(config) => sidecar.reload(config).await.map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    if let Err(error) = result {
        tracing::error!(
            config = %path.display(),
            %error,
            "configuration reload rejected; the previous configuration stays in effect"
        );
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes help only a person at a terminal and are noise in files and collectors.
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
}
