//! Graceful shutdown: the signals that start it and the flag that readiness checks read
//! during a drain. The drain itself is [`crate::sidecar::RunningSidecar::shutdown`]. Also
//! SIGHUP, which requests a configuration reload
//! ([`crate::sidecar::RunningSidecar::reload`]).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};

/// A flag set once a shutdown starts. From then on `/readyz` returns 503, so load balancers
/// stop sending new traffic. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct DrainFlag(Arc<AtomicBool>);

impl DrainFlag {
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The termination signals the sidecar handles, registered up front so that a signal sent
/// right after startup is not lost.
pub struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers handlers for SIGTERM and SIGINT, replacing their default action (exit).
    pub fn register() -> io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// SIGHUP, the conventional request to reread the configuration.
pub struct ReloadSignal(tokio::signal::unix::Signal);

impl ReloadSignal {
    /// Registers a handler for SIGHUP, replacing its default action (exit).
    pub fn register() -> io::Result<ReloadSignal> {
        Ok(ReloadSignal(signal(SignalKind::hangup())?))
    }

    /// Waits for the next SIGHUP.
    pub async fn recv(&mut self) {
        // `None` would mean the signal stream ended, which tokio does not do while the
        // runtime runs; waiting forever then is the right reading of "no more reloads".
        if self.0.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }
}
