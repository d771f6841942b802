//! Configuration: the TOML file shape, its defaults, and the book's built-in demo setup.
//!
//! [`StsConfig`] is what the file deserializes into and what callers build in code. It
//! contains raw values, and `validate` turns it into the checked settings the server runs on.

mod tls_mode;
mod validate;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::credentials::hash_secret;
use crate::error::StsError;

pub use tls_mode::TlsMode;
pub(crate) use validate::{is_scope_token, validate, ClientSettings, Settings};

/// Default listen address. Port 8443 is the one the book's `curl` commands use, and loopback
/// keeps a first start from exposing the demo client to the network.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8443);

/// Default issuer (`iss` claim), matching [`DEFAULT_LISTEN`] as the book's clients reach it.
pub const DEFAULT_ISSUER: &str = "https://localhost:8443";

/// Default data directory, relative to the working directory, for signing keys and
/// generated TLS files.
pub const DEFAULT_DATA_DIR: &str = "portcullis-data/sts";

/// Default refresh token lifetime: 24 hours, so a user signs in with a password about once a
/// day while each access token stays short-lived.
pub const DEFAULT_REFRESH_TOKEN_LIFETIME_SECS: u64 = 24 * 60 * 60;

/// Default access token lifetime: one hour, the value the book uses.
pub const DEFAULT_TOKEN_LIFETIME_SECS: u64 = 3600;

/// Configuration of the token service.
///
/// Deserializes from the TOML file described in `sts/README.md`; unknown fields are rejected
/// so a misspelled field fails at startup instead of being ignored. [`StsConfig::default`]
/// is the book's demo setup, while a field missing from a file takes the per-field default
/// (and a file without `[[clients]]` configures no client at all).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StsConfig {
    /// Socket address the HTTPS listener binds to; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Issuer URL (`scheme://host[:port]`, no path) used as the `iss` claim and as the base
    /// of every URL in the metadata documents.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Directory for signing keys, the key index and generated TLS files.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Algorithm of newly generated signing keys.
    #[serde(default)]
    pub signing_algorithm: SigningAlgorithm,
    /// Lifetime of each refresh token, in seconds.
    #[serde(default = "default_refresh_token_lifetime_secs")]
    pub refresh_token_lifetime_secs: u64,
    /// TLS mode: a generated certificate, certificate files, or plain HTTP.
    #[serde(default)]
    pub tls: TlsMode,
    /// Extra DNS names or IP addresses for the generated server certificate, beyond
    /// `localhost`, `127.0.0.1` and `::1`.
    #[serde(default)]
    pub tls_hostnames: Vec<String>,
    /// OAuth clients allowed to request tokens.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Resource owners accepted by the `password` grant.
    #[serde(default)]
    pub users: Vec<UserConfig>,
}

/// An OAuth client registration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Client identifier (`client_id`).
    pub id: String,
    /// Argon2id PHC hash of the client secret, as printed by `portcullis-sts hash-password`.
    pub secret_hash: String,
    /// Grant types the client may use.
    pub grants: Vec<GrantType>,
    /// Scopes the client may request; a request without `scope` receives all of them.
    pub scopes: Vec<String>,
    /// Audiences (`aud` claim) of the client's tokens; the `audience` parameter may narrow them.
    pub audiences: Vec<String>,
    /// Access token lifetime in seconds.
    #[serde(default = "default_token_lifetime_secs")]
    pub token_lifetime_secs: u64,
}

/// A resource owner for the `password` grant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// User name, issued as the `sub` claim.
    pub username: String,
    /// Argon2id PHC hash of the password, as printed by `portcullis-sts hash-password`.
    pub password_hash: String,
}

/// OAuth 2.0 grant types the service implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// Resource owner password credentials (RFC 6749 section 4.3).
    Password,
    /// Client credentials (RFC 6749 section 4.4).
    ClientCredentials,
    /// Refresh token (RFC 6749 section 6).
    RefreshToken,
}

impl GrantType {
    /// Every grant type, in the order metadata documents list them.
    pub const ALL: [GrantType; 3] = [
        GrantType::Password,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
    ];

    /// Returns the `grant_type` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    /// Parses a `grant_type` parameter value; `None` for grant types this service lacks.
    pub fn from_param(value: &str) -> Option<GrantType> {
        GrantType::ALL
            .into_iter()
            .find(|grant| grant.as_str() == value)
    }
}

/// JWS algorithm of the access token signature (RFC 7518 and RFC 8037 names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit RSA key; the default because every JWT
    /// library verifies it.
    #[default]
    RS256,
    /// ECDSA with the P-256 curve and SHA-256.
    ES256,
    /// EdDSA with Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    /// Returns the JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// Returns the matching `jsonwebtoken` algorithm.
    pub(crate) fn jwt_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            SigningAlgorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl StsConfig {
    /// Reads and validates a TOML configuration file.
    ///
    /// # Errors
    ///
    /// [`StsError::ReadConfig`] when the file cannot be read, [`StsError::ParseConfig`] when
    /// it is not valid TOML of this shape, and [`StsError::Config`] when a value is invalid.
    pub fn from_file(path: &Path) -> Result<StsConfig, StsError> {
        let text = fs::read_to_string(path).map_err(|source| StsError::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        let config: StsConfig = toml::from_str(&text).map_err(|source| StsError::ParseConfig {
            path: path.to_path_buf(),
            source,
        })?;
        validate(&config)?;
        Ok(config)
    }

    /// Returns the longest access token lifetime of any client, in seconds. A retired signing
    /// key stays published for at least this long.
    pub(crate) fn max_token_lifetime_secs(&self) -> u64 {
        self.clients
            .iter()
            .map(|client| client.token_lifetime_secs)
            .max()
            .unwrap_or(DEFAULT_TOKEN_LIFETIME_SECS)
    }
}

impl Default for StsConfig {
    /// Builds the demo setup of *Microservices Security in Action*: client `applicationid`
    /// with secret `applicationsecret` and user `peter` with password `peter123`. The
    /// plaintexts are hashed here, so every call spends two Argon2 hashes.
    fn default() -> StsConfig {
        StsConfig {
            listen: DEFAULT_LISTEN,
            issuer: DEFAULT_ISSUER.to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            signing_algorithm: SigningAlgorithm::default(),
            refresh_token_lifetime_secs: DEFAULT_REFRESH_TOKEN_LIFETIME_SECS,
            tls: TlsMode::default(),
            tls_hostnames: Vec::new(),
            clients: vec![ClientConfig {
                id: "applicationid".to_owned(),
                secret_hash: hash_demo_secret("applicationsecret"),
                grants: GrantType::ALL.to_vec(),
                scopes: vec!["foo".to_owned(), "bar".to_owned()],
                audiences: vec!["orders".to_owned(), "inventory".to_owned()],
                token_lifetime_secs: DEFAULT_TOKEN_LIFETIME_SECS,
            }],
            users: vec![UserConfig {
                username: "peter".to_owned(),
                password_hash: hash_demo_secret("peter123"),
            }],
        }
    }
}

fn hash_demo_secret(plaintext: &str) -> String {
    // The only failure of Argon2 with its default parameters is a failing OS random number
    // generator while drawing the salt, and nothing secure can run without one.
    #[allow(clippy::expect_used)]
    hash_secret(plaintext).expect("hashing a demo secret needs the OS random number generator")
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
}

fn default_issuer() -> String {
    DEFAULT_ISSUER.to_owned()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(DEFAULT_DATA_DIR)
}

fn default_refresh_token_lifetime_secs() -> u64 {
    DEFAULT_REFRESH_TOKEN_LIFETIME_SECS
}

fn default_token_lifetime_secs() -> u64 {
    DEFAULT_TOKEN_LIFETIME_SECS
}

#[cfg(test)]
mod tests;
