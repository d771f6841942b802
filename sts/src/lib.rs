//! Portcullis STS: an OAuth 2.0 token service that issues JWT access tokens (RFC 9068) for
//! the Portcullis sidecars to verify.
//!
//! Module map, in the order a token request meets them:
//!
//! - `server`: the listener, TLS and HTTP/1.1 per connection, graceful shutdown.
//! - `routes`: dispatch by path and method, one log line per request.
//! - `token`: `POST /oauth/token`: form parsing, client authentication, the grants,
//!   refresh token rotation, and access token signing.
//! - `credentials`: Argon2id secrets and constant-time lookups of clients and users.
//! - `keys`: signing keys on disk, rotation, and the JWKS.
//! - `metadata`: the RFC 8414 and OpenID discovery documents.
//! - `tls`: the rustls configuration and the generated local CA.
//! - [`config`]: the TOML configuration, its defaults and its validation.
//! - `files`: crash-safe writes with private file modes.
//!
//! [`start`] runs the service in the current tokio runtime; [`rotate_key`] adds a signing
//! key, and a running service picks it up without a restart.

mod clock;
pub mod config;
mod credentials;
mod error;
mod files;
mod keys;
mod metadata;
mod response;
mod routes;
mod server;
mod tls;
mod token;

use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::info;

pub use config::{ClientConfig, GrantType, SigningAlgorithm, StsConfig, TlsMode, UserConfig};
pub use credentials::hash_secret;
pub use error::StsError;
pub use keys::KeyError;
pub use server::RunningSts;
pub use tls::TlsError;
pub use token::{AccessTokenClaims, ACCESS_TOKEN_TYPE};

use config::{validate, Settings};
use keys::KeyStore;
use metadata::Metadata;
use routes::App;
use token::TokenService;

/// Validates `config`, prepares signing keys and TLS files in its data directory, binds
/// `config.listen` (port 0 picks a free port), and serves until [`RunningSts::shutdown`].
///
/// Key generation and secret hashing run on tokio's blocking thread pool, so this needs a
/// multi-threaded or current-thread tokio runtime with blocking threads (any default one).
///
/// # Errors
///
/// [`StsError::InvalidConfig`] for an invalid configuration, [`StsError::Keys`] or
/// [`StsError::Tls`] when the data directory cannot be prepared, and [`StsError::Bind`]
/// when the address is taken.
pub async fn start(config: StsConfig) -> Result<RunningSts, StsError> {
    let settings = validate(&config)?;
    let prepared = settings.clone();
    let (app, tls) = tokio::task::spawn_blocking(move || prepare(&prepared))
        .await
        .map_err(|source| StsError::StartupTask {
            step: "prepare keys and TLS",
            source,
        })??;

    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|source| StsError::Bind {
            addr: settings.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StsError::Bind {
        addr: settings.listen,
        source,
    })?;

    let (acceptor, ca_cert_path) = match tls {
        Some(tls) => (Some(tls.acceptor), tls.ca_cert_path),
        None => (None, None),
    };
    info!(
        addr = %local_addr,
        issuer = %settings.issuer,
        tls = acceptor.is_some(),
        ca_cert = ca_cert_path.as_ref().map(|path| path.display().to_string()),
        "listening"
    );
    Ok(RunningSts::new(
        local_addr,
        settings.issuer,
        ca_cert_path,
        listener,
        Arc::new(app),
        acceptor,
    ))
}

/// Runs the blocking startup steps: keys, TLS files, and the credential tables.
fn prepare(settings: &Settings) -> Result<(App, Option<tls::TlsSetup>), StsError> {
    keys::prepare(
        &settings.data_dir,
        settings.signing_algorithm,
        settings.max_token_lifetime_secs,
    )?;
    let keys = Arc::new(KeyStore::open(&settings.data_dir)?);
    let tls = tls::prepare(settings)?;
    let app = App {
        tokens: TokenService::new(settings, Arc::clone(&keys))?,
        keys,
        metadata: Metadata::new(settings),
    };
    Ok((app, tls))
}

/// Adds a new signing key of `config.signing_algorithm` to `config.data_dir` and returns its
/// `kid`. The previous key stays in the JWKS until every token it signed has expired, and
/// keys past that point are deleted. A running service signs with the new key from its next
/// token request on.
///
/// Pass the same configuration the service runs with: the longest client token lifetime
/// decides when retired keys are deleted. Blocking: RSA key generation takes a moment.
///
/// # Errors
///
/// [`StsError::InvalidConfig`] for an invalid configuration, and [`StsError::Keys`] when
/// the key directory cannot be read or written.
pub fn rotate_key(config: &StsConfig) -> Result<String, StsError> {
    let settings = validate(config)?;
    let kid = keys::rotate(
        &settings.data_dir,
        settings.signing_algorithm,
        settings.max_token_lifetime_secs,
    )?;
    Ok(kid)
}
