//! Sidecar configuration: the TOML file format, its defaults, and validation into types that
//! cannot hold an invalid value.
//!
//! `RawConfig` mirrors the file one to one (unknown fields are rejected so a typo never turns
//! a check off silently). [`Config::from_toml`] turns it into [`Config`], whose fields are
//! parsed addresses, URIs, algorithms and durations. Every error names the field and the fix.

mod auth;
mod listener;
mod raw;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, Uri};
use jsonwebtoken::Algorithm;

pub use auth::{
    normalize_typ, ClaimCondition, ClaimRequirement, TokenSources, STANDARD_QUERY_PARAMETER,
};
pub use listener::{ListenerLimits, RawLimits};
pub use raw::RawConfig;

/// Prefix of every identity header the sidecar sets for the app. Client-sent headers with this
/// prefix are always removed, so the app can trust any header that carries it.
pub const IDENTITY_HEADER_PREFIX: &str = "x-portcullis-";

/// A configuration error, naming the field that is wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for `{field}`: {message}")]
    Invalid { field: String, message: String },
}

impl ConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The validated configuration of one sidecar.
#[derive(Debug, Clone)]
pub struct Config {
    pub inbound: InboundConfig,
    pub providers: Vec<ProviderConfig>,
    pub routes: Vec<RouteRule>,
    pub claim_headers: Vec<ClaimHeader>,
    /// The query parameter and cookie that may carry the token besides the header.
    pub token_sources: TokenSources,
    pub outbound: Option<OutboundConfig>,
    pub admin: AdminConfig,
    pub cache: CacheConfig,
    /// How long in-flight requests may run after SIGTERM before they are cut.
    pub shutdown_grace: Duration,
    /// Threads that serve requests; `None` means one per available CPU. With 1, the sidecar
    /// runs on a single-threaded runtime, which skips the work-stealing scheduler's
    /// synchronisation on every task wake-up.
    pub worker_threads: Option<usize>,
}

/// The listener that receives traffic for the app and the app it forwards to.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    pub listen: SocketAddr,
    /// Base URI of the app, always plain `http://` on loopback or a private address.
    pub upstream: Uri,
    pub tls: Option<ServerTlsConfig>,
    /// The `realm` parameter of `WWW-Authenticate: Bearer` challenges.
    pub realm: String,
    /// Whether the verified `Authorization` header is passed on to the app.
    pub forward_authorization: bool,
    /// Maximum time to wait for the app's response headers.
    pub upstream_timeout: Duration,
    /// Maximum time to open a TCP connection to the app.
    pub upstream_connect_timeout: Duration,
    /// Maximum requests in flight to the app at once, and so pooled connections to it. Further
    /// requests wait for a slot, within `upstream_timeout`.
    pub upstream_max_connections: usize,
    /// Whether requests reach the app over HTTP/2 with prior knowledge (h2c) instead of
    /// HTTP/1.1.
    pub upstream_http2: bool,
    /// Whether route paths ignore ASCII letter case, for apps that match paths that way. The
    /// route paths in [`Config::routes`] are then lower case.
    pub case_insensitive_routes: bool,
    pub limits: ListenerLimits,
}

/// Server-side TLS: the certificate chain and key, and an optional client CA that turns on
/// mutual TLS (clients without a certificate signed by it are rejected in the handshake).
#[derive(Debug, Clone)]
pub struct ServerTlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// Source of a provider's signing keys.
#[derive(Debug, Clone, PartialEq)]
pub enum JwksSource {
    /// Fetched over HTTP(S) at startup and on refresh.
    Uri(Uri),
    /// Read from a local file (for air-gapped setups and tests), and read again when the
    /// file changes.
    File(PathBuf),
    /// Found through OpenID Connect discovery: the `jwks_uri` of the issuer's
    /// `/.well-known/openid-configuration` document at this URI.
    Discovery(Uri),
}

/// One token issuer the sidecar trusts.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Exact value the token's `iss` claim must have.
    pub issuer: String,
    /// The token's `aud` must contain at least one of these.
    pub audiences: Vec<String>,
    pub jwks: JwksSource,
    /// CA certificates (PEM) trusted when fetching `jwks` over HTTPS, instead of the system's
    /// CA certificates, which apply when this is unset.
    pub ca_file: Option<PathBuf>,
    /// Header `alg` values accepted; anything else is rejected before key lookup.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated when checking `exp` and `nbf`.
    pub leeway: Duration,
    /// How often the key set is refetched in the background.
    pub refresh_interval: Duration,
    /// Minimum time between two fetches triggered by an unknown `kid`.
    pub unknown_kid_cooldown: Duration,
    /// Time limit for one JWKS fetch.
    pub fetch_timeout: Duration,
    /// How long the last good key set stays in use while every refresh fails. Past it the
    /// provider has no keys, its tokens get 503 and `/readyz` reports not ready.
    pub max_key_staleness: Duration,
    /// Longest accepted token lifetime (`exp - iat`); `None` accepts any lifetime.
    pub max_token_lifetime: Option<Duration>,
    /// The `typ` header tokens must carry, lower case and without an `application/`
    /// prefix, such as `at+jwt`; `None` accepts any `typ` or none.
    pub required_typ: Option<String>,
}

/// Path matcher of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    /// Matches the prefix itself and anything below it at a `/` boundary: `/orders` matches
    /// `/orders` and `/orders/7` but not `/ordersx`.
    Prefix(String),
}

/// Whether a route needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRequirement {
    Required,
    /// The request is forwarded without any token check (health endpoints and the like).
    /// Identity headers are still stripped.
    None,
}

/// One entry of the route table; the first rule that matches a request decides.
#[derive(Debug, Clone)]
pub struct RouteRule {
    pub path: PathMatch,
    /// Empty means every method.
    pub methods: Vec<Method>,
    pub auth: AuthRequirement,
    /// Every one of these must be in the token's `scope`.
    pub scopes: Vec<String>,
    /// Every one of these must hold for the token's claims.
    pub claims: Vec<ClaimRequirement>,
}

/// A claim copied into a request header for the app.
#[derive(Debug, Clone)]
pub struct ClaimHeader {
    pub claim: String,
    /// Lower-case header name; always starts with [`IDENTITY_HEADER_PREFIX`].
    pub header: http::HeaderName,
}

/// The loopback listener the app sends its calls to other services through.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub listen: SocketAddr,
    pub services: Vec<OutboundService>,
    pub upstream_timeout: Duration,
    /// Maximum time to open a TCP connection to a peer.
    pub upstream_connect_timeout: Duration,
    pub limits: ListenerLimits,
}

/// A service the app may call, chosen by the request's `Host` (port ignored).
#[derive(Debug, Clone)]
pub struct OutboundService {
    /// Host name the app uses, lower case.
    pub name: String,
    /// Base URI of the peer, `http://` or `https://`.
    pub upstream: Uri,
    pub tls: Option<ClientTlsConfig>,
}

/// Client-side TLS for an outbound service: the CA that signs the peer's certificate and an
/// optional client certificate for mutual TLS.
#[derive(Debug, Clone)]
pub struct ClientTlsConfig {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Name to verify the peer's certificate against; defaults to the upstream's host.
    pub server_name: Option<String>,
}

/// The admin listener: `/healthz`, `/readyz`, `/metrics`.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

/// The verified-token cache.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Maximum number of cached tokens; 0 turns the cache off.
    pub max_entries: usize,
}

impl Config {
    /// Reads and validates the file at `path`, then applies environment overrides.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            message: err.to_string(),
        })?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        raw.with_env_overrides(|name| std::env::var(name).ok())?
            .validate(base_dir)
    }

    /// Parses and validates TOML text; relative file paths resolve against `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: PathBuf::from("<inline>"),
            message: err.to_string(),
        })?;
        raw.validate(base_dir)
    }
}

/// Parses an algorithm name as it appears in a JWT header.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    let algorithm = match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    };
    Some(algorithm)
}

fn check_unique<'a>(
    field: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for value in values {
        if !seen.insert(value) {
            return Err(ConfigError::invalid(
                field,
                format!("`{value}` appears twice; each entry must be unique"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
