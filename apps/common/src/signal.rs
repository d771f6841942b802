//! Logging setup and signal handling for the binaries' `main`.

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::error::AppError;
use crate::server::RunningApp;

/// Sends log lines to standard error, filtered by `RUST_LOG` (default `info`), with
/// colours only when standard error is a terminal.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// Runs the rest of a binary's `main` once `start` has returned: logs a startup failure,
/// or serves until SIGTERM or SIGINT. Returns the process exit code.
pub async fn serve_until_signal(name: &str, started: Result<RunningApp, AppError>) -> ExitCode {
    let app = match started {
        Ok(app) => app,
        Err(error) => {
            error!(app = name, %error, "failed to start");
            return ExitCode::FAILURE;
        }
    };

    match run_until_signal(app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            error!(app = name, %error, "failed to install the signal handlers");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGTERM or SIGINT, then shuts `app` down gracefully.
///
/// A second signal during the shutdown returns at once, without waiting for in-flight
/// requests. Returning from `main` then drops their connections.
pub async fn run_until_signal(app: RunningApp) -> io::Result<()> {
    let mut signals = ShutdownSignals::new()?;

    let name = signals.recv().await;
    info!(
        signal = name,
        "shutting down; send the signal again to stop at once"
    );

    tokio::select! {
        // Checked first, so that a second signal arriving after the drain has finished
        // (such as GNU `timeout` signalling the process and then its group) changes nothing.
        biased;
        () = app.shutdown() => info!("shutdown complete"),
        name = signals.recv() => warn!(signal = name, "second signal; stopping without waiting for in-flight requests"),
    }
    Ok(())
}

/// SIGTERM (sent by Kubernetes and Docker) and SIGINT (Ctrl-C).
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn new() -> io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// Waits for the next signal and returns its name.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => "SIGTERM",
                _ = self.interrupt.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            // Without Unix signals only Ctrl-C can be caught. If even that fails, no stop
            // request can arrive, so wait forever.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            "Ctrl-C"
        }
    }
}
