//! The error type of the public API. Failures of single token requests are OAuth error
//! responses instead, built in the `token` module.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use thiserror::Error;

use crate::keys::KeyError;
use crate::tls::TlsError;

/// Failures to configure, start or maintain the token service.
#[derive(Debug, Error)]
pub enum StsError {
    /// The configuration file could not be read.
    #[error("failed to read config file {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The configuration file is not valid TOML of the expected shape.
    #[error("invalid config file {path}: {source}")]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },

    /// A configuration value is invalid. `problem` contains the reason and the fix.
    #[error("invalid config field `{field}`: {problem}")]
    InvalidConfig { field: String, problem: String },

    /// Hashing a secret failed, which happens only when the OS random number generator fails.
    #[error("failed to hash the secret: {source}")]
    Hash {
        #[source]
        source: argon2::password_hash::Error,
    },

    /// Signing key storage failed.
    #[error(transparent)]
    Keys(#[from] KeyError),

    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),

    /// The listener could not bind its address.
    #[error(
        "failed to listen on {addr}: {source}; choose a free address with `listen` or --listen"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },

    /// A startup step that runs on the blocking thread pool panicked or was cancelled.
    #[error("startup step `{step}` did not complete: {source}")]
    StartupTask {
        step: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}
