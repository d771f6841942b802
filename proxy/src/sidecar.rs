//! Starting and stopping a whole sidecar: the inbound, outbound and admin listeners, the key
//! refresh task, and the ordered drain on shutdown. [`reload`] applies a new configuration
//! to a running sidecar.

mod reload;

pub use reload::ReloadError;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::admin::Admin;
use crate::auth::Authorizer;
use crate::config::{Config, ListenerLimits};
use crate::inbound::Inbound;
use crate::keys::{KeyError, KeyStore};
use crate::metrics::Metrics;
use crate::outbound::{Outbound, OutboundError};
use crate::server::{self, ListenerSettings, ServerHandle};
use crate::shutdown::DrainFlag;
use crate::tls::{self, TlsError};

/// A failure to start the sidecar.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} for the {listener} listener: {source}; free the port or change the listen address")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("inbound TLS: {0}")]
    InboundTls(#[from] TlsError),
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// A started sidecar. Dropping it without calling [`RunningSidecar::shutdown`] stops the
/// listeners at once without draining.
pub struct RunningSidecar {
    inbound: ServerHandle,
    outbound: Option<ServerHandle>,
    admin: ServerHandle,
    inbound_handler: Arc<Inbound>,
    outbound_handler: Option<Arc<Outbound>>,
    admin_handler: Arc<Admin>,
    keys: Arc<KeyStore>,
    metrics: Metrics,
    key_refresh: AbortOnDrop,
    drain: DrainFlag,
    /// The configuration in effect, which a reload compares against.
    config: Config,
}

/// Binds every listener and starts serving. It does not wait for signing keys: the key
/// refresh task fetches them in the background. Until it has, `/readyz` returns 503 and
/// requests that need a token get 503 with `Retry-After`.
pub async fn start(config: Config) -> Result<RunningSidecar, StartError> {
    let metrics = Metrics::new();

    // Everything that reads files comes before binding, so a bad file leaves no port open.
    let inbound_tls = inbound_tls_acceptor(&config)?;
    let outbound_handler = config
        .outbound
        .as_ref()
        .map(|outbound| Outbound::new(outbound, metrics.clone()).map(Arc::new))
        .transpose()?;
    let keys = KeyStore::new(&config.providers, metrics.clone())?;

    let inbound_listener = bind("inbound", config.inbound.listen).await?;
    let outbound_listener = match &config.outbound {
        Some(outbound) => Some(bind("outbound", outbound.listen).await?),
        None => None,
    };
    let admin_listener = bind("admin", config.admin.listen).await?;

    let drain = DrainFlag::default();
    let key_refresh = AbortOnDrop(keys.spawn());
    let authorizer = Authorizer::new(&config, Arc::clone(&keys), metrics.clone());
    let inbound_handler = Arc::new(Inbound::new(
        &config.inbound,
        &config.claim_headers,
        authorizer,
        metrics.clone(),
    ));
    let admin_handler = Arc::new(Admin::new(
        metrics.clone(),
        Arc::clone(&keys),
        drain.clone(),
    ));

    let inbound = serve(
        "inbound",
        config.inbound.listen,
        inbound_listener,
        inbound_settings(&config, inbound_tls),
        Arc::clone(&inbound_handler),
        metrics.clone(),
    )?;
    let outbound = match (outbound_listener, &outbound_handler, &config.outbound) {
        (Some(listener), Some(handler), Some(outbound)) => Some(serve(
            "outbound",
            outbound.listen,
            listener,
            plain_settings(outbound.limits.clone()),
            Arc::clone(handler),
            metrics.clone(),
        )?),
        _ => None,
    };
    let admin = serve(
        "admin",
        config.admin.listen,
        admin_listener,
        plain_settings(ListenerLimits::default()),
        Arc::clone(&admin_handler),
        metrics.clone(),
    )?;

    tracing::info!(
        inbound = %inbound.local_addr(),
        inbound_tls = config.inbound.tls.is_some(),
        upstream = %config.inbound.upstream,
        outbound = ?outbound.as_ref().map(ServerHandle::local_addr),
        admin = %admin.local_addr(),
        "sidecar started"
    );
    Ok(RunningSidecar {
        inbound,
        outbound,
        admin,
        inbound_handler,
        outbound_handler,
        admin_handler,
        keys,
        metrics,
        key_refresh,
        drain,
        config,
    })
}

/// Loads every TLS file the configuration names, as [`start`] does, but binds nothing.
/// `portcullis check-config` uses it.
pub fn check_files(config: &Config) -> Result<(), StartError> {
    inbound_tls_acceptor(config)?;
    if let Some(outbound) = &config.outbound {
        Outbound::new(outbound, Metrics::new())?;
    }
    Ok(())
}

impl RunningSidecar {
    pub fn inbound_addr(&self) -> SocketAddr {
        self.inbound.local_addr()
    }

    pub fn outbound_addr(&self) -> Option<SocketAddr> {
        self.outbound.as_ref().map(ServerHandle::local_addr)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops the sidecar gracefully within `shutdown_grace`. `/readyz` turns 503 at once.
    /// The inbound listener stops accepting first and its in-flight requests may finish. The
    /// outbound and admin listeners keep accepting until then, because requests the app is
    /// still serving may need to call other services, and because readiness probes should
    /// see the 503. Connections still open when the grace period ends are closed and
    /// counted in the final log line.
    pub async fn shutdown(self) {
        self.drain.start();
        let grace = self.config.shutdown_grace;
        let deadline = Instant::now() + grace;
        tracing::info!(?grace, "shutting down");

        let mut cut = self.inbound.drain(deadline).await;
        if let Some(outbound) = self.outbound {
            cut += outbound.drain(deadline).await;
        }
        cut += self.admin.drain(deadline).await;
        drop(self.key_refresh);

        if cut > 0 {
            tracing::warn!(connections_cut = cut, "sidecar stopped");
        } else {
            tracing::info!(connections_cut = 0, "sidecar stopped");
        }
    }
}

/// Aborts the key refresh task when dropped, so a sidecar dropped without `shutdown` does
/// not leave it fetching keys forever.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn inbound_tls_acceptor(config: &Config) -> Result<Option<TlsAcceptor>, TlsError> {
    let Some(tls_config) = &config.inbound.tls else {
        return Ok(None);
    };
    let server_config = tls::server_config(
        &tls_config.cert,
        &tls_config.key,
        tls_config.client_ca.as_deref(),
    )?;
    Ok(Some(TlsAcceptor::from(Arc::new(server_config))))
}

async fn bind(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            listener,
            addr,
            source,
        })
}

/// Returns the inbound listener's settings: its limits and TLS.
fn inbound_settings(config: &Config, tls: Option<TlsAcceptor>) -> ListenerSettings {
    ListenerSettings {
        limits: config.inbound.limits.clone(),
        tls,
    }
}

fn plain_settings(limits: ListenerLimits) -> ListenerSettings {
    ListenerSettings { limits, tls: None }
}

/// Starts the accept loop. `addr` is the configured address, for the error message.
fn serve<H: server::Handler>(
    listener_name: &'static str,
    addr: SocketAddr,
    listener: TcpListener,
    settings: ListenerSettings,
    handler: Arc<H>,
    metrics: Metrics,
) -> Result<ServerHandle, StartError> {
    server::spawn(listener_name, listener, settings, handler, metrics).map_err(|source| {
        StartError::Bind {
            listener: listener_name,
            addr,
            source,
        }
    })
}
