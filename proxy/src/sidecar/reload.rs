//! Applying a new configuration to a running sidecar, as SIGHUP does. Everything that reads
//! files or fetches keys happens first, so any failure leaves the old configuration serving.
//! Then the handlers and listener settings are swapped. Established connections stay open,
//! and their next requests use the new routes and keys. Their limits and TLS session stay as
//! they were, while new connections get everything new, including TLS certificates.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{inbound_settings, inbound_tls_acceptor, plain_settings, AbortOnDrop, RunningSidecar};
use crate::auth::Authorizer;
use crate::config::Config;
use crate::keys::{KeyError, KeyStore};
use crate::outbound::{Outbound, OutboundError};
use crate::tls::TlsError;

/// How long a reload waits for the signing keys of providers it changes: enough for a first
/// fetch plus a retry at the default 5-second fetch timeout. A reload that cannot get keys
/// in that time is rejected, because applying it would leave tokens unverifiable.
const RELOAD_KEYS_TIMEOUT: Duration = Duration::from_secs(15);
const KEYS_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Reason a new configuration was not applied; the old one keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("`{field}` changed from {old} to {new}; a running listener cannot move, so restart the sidecar to apply it")]
    ListenChanged {
        field: &'static str,
        old: String,
        new: String,
    },
    #[error("the [outbound] section was added or removed; restart the sidecar to apply it")]
    OutboundToggled,
    #[error("`worker_threads` changed from {old} to {new}; the runtime's threads are fixed at start, so restart the sidecar to apply it")]
    WorkerThreadsChanged { old: String, new: String },
    #[error("inbound TLS: {0}")]
    InboundTls(#[from] TlsError),
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("the signing keys of the changed [[providers]] did not load within {timeout:?}; check their jwks_uri and that the issuer is reachable")]
    KeysNotReady { timeout: Duration },
}

impl RunningSidecar {
    /// Applies `config` or, when any part of it cannot be applied, returns why and changes
    /// nothing. Listen addresses and the presence of `[outbound]` cannot change.
    pub async fn reload(&mut self, config: Config) -> Result<(), ReloadError> {
        check_fixed_settings(&self.config, &config)?;
        let inbound_tls = inbound_tls_acceptor(&config)?;
        let outbound = match &config.outbound {
            Some(outbound) => Some(Outbound::new(outbound, self.metrics.clone())?),
            None => None,
        };
        let new_keys = if config.providers == self.config.providers {
            None
        } else {
            Some(self.load_keys(&config).await?)
        };

        // Nothing below can fail, so the sidecar never runs half of each configuration.
        if let Some((keys, refresh)) = new_keys {
            self.keys = keys;
            self.key_refresh = refresh;
            self.admin_handler.set_keys(Arc::clone(&self.keys));
        }
        let authorizer = Authorizer::new(&config, Arc::clone(&self.keys), self.metrics.clone());
        self.inbound_handler
            .reload(&config.inbound, &config.claim_headers, authorizer);
        if let (Some(handler), Some(outbound)) = (&self.outbound_handler, outbound) {
            handler.replace(outbound);
        }
        self.inbound.update(inbound_settings(&config, inbound_tls));
        if let (Some(server), Some(outbound)) = (&self.outbound, &config.outbound) {
            server.update(plain_settings(outbound.limits.clone()));
        }
        tracing::info!(
            routes = config.routes.len(),
            providers = config.providers.len(),
            inbound_tls = config.inbound.tls.is_some(),
            "configuration reloaded"
        );
        self.config = config;
        Ok(())
    }

    /// Builds a key store for `config`'s providers and waits until it has their keys.
    async fn load_keys(
        &self,
        config: &Config,
    ) -> Result<(Arc<KeyStore>, AbortOnDrop), ReloadError> {
        let keys = KeyStore::new(&config.providers, self.metrics.clone())?;
        // Dropping `refresh` on failure stops the new store's fetches.
        let refresh = AbortOnDrop(keys.spawn());
        let deadline = Instant::now() + RELOAD_KEYS_TIMEOUT;
        while !keys.is_ready() {
            if Instant::now() >= deadline {
                return Err(ReloadError::KeysNotReady {
                    timeout: RELOAD_KEYS_TIMEOUT,
                });
            }
            tokio::time::sleep(KEYS_POLL_INTERVAL).await;
        }
        Ok((keys, refresh))
    }
}

/// Rejects a configuration that moves a listener or adds or removes one.
fn check_fixed_settings(old: &Config, new: &Config) -> Result<(), ReloadError> {
    let changed = |field, old: std::net::SocketAddr, new: std::net::SocketAddr| {
        (old != new).then(|| ReloadError::ListenChanged {
            field,
            old: old.to_string(),
            new: new.to_string(),
        })
    };
    if let Some(err) = changed("inbound.listen", old.inbound.listen, new.inbound.listen) {
        return Err(err);
    }
    if let Some(err) = changed("admin.listen", old.admin.listen, new.admin.listen) {
        return Err(err);
    }
    if old.worker_threads != new.worker_threads {
        let show =
            |count: Option<usize>| count.map_or_else(|| "unset".to_owned(), |n| n.to_string());
        return Err(ReloadError::WorkerThreadsChanged {
            old: show(old.worker_threads),
            new: show(new.worker_threads),
        });
    }
    match (&old.outbound, &new.outbound) {
        (Some(old), Some(new)) => match changed("outbound.listen", old.listen, new.listen) {
            Some(err) => Err(err),
            None => Ok(()),
        },
        (None, None) => Ok(()),
        _ => Err(ReloadError::OutboundToggled),
    }
}
