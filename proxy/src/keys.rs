//! Signing keys per token issuer: fetching each provider's JWKS, keeping the last good set,
//! refreshing it in the background, and refetching once when a token names an unknown `kid`.

use std::sync::Arc;

use jsonwebtoken::DecodingKey;

use crate::config::ProviderConfig;
use crate::metrics::Metrics;

/// A failure to set up key fetching for a provider.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("provider {issuer}: {message}")]
    Setup { issuer: String, message: String },
}

/// The signature algorithm family a key can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

/// One usable key from a provider's JWKS.
#[derive(Clone)]
pub struct VerificationKey {
    pub kid: Option<String>,
    pub family: KeyFamily,
    pub key: DecodingKey,
}

/// The key sets of every configured provider.
pub struct KeyStore {
    _metrics: Metrics,
}

impl KeyStore {
    /// Prepares one fetcher per provider; fails when a provider's TLS trust cannot be set up.
    pub fn new(providers: &[ProviderConfig], metrics: Metrics) -> Result<Arc<KeyStore>, KeyError> {
        let _ = providers;
        Ok(Arc::new(KeyStore { _metrics: metrics }))
    }

    /// Starts the background task: first fetch with backoff until it succeeds, then refresh
    /// every `refresh_interval`. Runs until the handle is aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        todo!()
    }

    /// True once every provider has at least one usable key.
    pub fn is_ready(&self) -> bool {
        todo!()
    }
}
