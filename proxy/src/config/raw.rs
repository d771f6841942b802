//! The configuration file as written, with defaults, and its validation into [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, Method, Uri};
use serde::Deserialize;

use super::auth::{
    normalize_typ, validate_claim_requirements, validate_token_sources, RawClaimRequirement,
    RawTokenSources,
};
use super::listener::{fold_route_case, positive_secs, RawLimits};
use super::{
    check_unique, parse_algorithm, AdminConfig, AuthRequirement, CacheConfig, ClaimHeader,
    ClientTlsConfig, Config, ConfigError, InboundConfig, JwksSource, OutboundConfig,
    OutboundService, PathMatch, ProviderConfig, RouteRule, ServerTlsConfig, IDENTITY_HEADER_PREFIX,
};

/// Listens on every interface because peers reach the sidecar from outside the pod.
const DEFAULT_INBOUND_LISTEN: &str = "0.0.0.0:9443";
/// Loopback only: metrics and readiness are for the kubelet and a local scraper.
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";
/// Same clock skew allowance as Envoy's `jwt_authn` (`clock_skew_seconds`, 60).
const DEFAULT_LEEWAY_SECS: u64 = 60;
/// Envoy's `remote_jwks` caches keys for 5 minutes by default; STS rotations publish a new key
/// well before signing with it, so 5 minutes keeps the sidecar current at little cost.
const DEFAULT_REFRESH_SECS: u64 = 300;
/// Bounds the fetches a flood of random `kid` values can cause to two a minute.
const DEFAULT_UNKNOWN_KID_COOLDOWN_SECS: u64 = 30;
const DEFAULT_FETCH_TIMEOUT_SECS: u64 = 5;
/// A day outlasts any routine outage of an issuer's JWKS endpoint, so tokens keep working
/// through one. After a day, keys the issuer may have withdrawn stop being trusted.
const DEFAULT_MAX_KEY_STALENESS_SECS: u64 = 86_400;
/// Apps behind the sidecar are expected to respond in well under this.
const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 30;
/// Envoy's default cluster `connect_timeout`. A refused connection fails at once; this bounds
/// only a peer that drops the connection attempt.
const DEFAULT_UPSTREAM_CONNECT_TIMEOUT_SECS: u64 = 5;
/// Ends the drain before Kubernetes' default 30-second termination grace period sends SIGKILL.
const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 20;
/// About 10,000 tokens of roughly 1 KiB each: a few MiB at most.
const DEFAULT_CACHE_ENTRIES: usize = 10_000;
const DEFAULT_REALM: &str = "portcullis";

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub inbound: RawInbound,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub claim_headers: Vec<RawClaimHeader>,
    #[serde(default)]
    pub token_sources: RawTokenSources,
    pub outbound: Option<RawOutbound>,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub cache: RawCache,
    pub shutdown_grace_secs: Option<u64>,
    pub worker_threads: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInbound {
    pub listen: Option<String>,
    pub upstream: String,
    pub tls: Option<RawServerTls>,
    pub realm: Option<String>,
    pub forward_authorization: Option<bool>,
    pub upstream_timeout_secs: Option<u64>,
    pub upstream_connect_timeout_secs: Option<u64>,
    pub upstream_max_connections: Option<usize>,
    pub upstream_http2: Option<bool>,
    pub case_insensitive_routes: Option<bool>,
    #[serde(default)]
    pub limits: RawLimits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks_uri: Option<String>,
    pub jwks_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub algorithms: Option<Vec<String>>,
    pub leeway_secs: Option<u64>,
    pub refresh_interval_secs: Option<u64>,
    pub unknown_kid_cooldown_secs: Option<u64>,
    pub fetch_timeout_secs: Option<u64>,
    pub max_key_staleness_secs: Option<u64>,
    pub max_token_lifetime_secs: Option<u64>,
    pub require_typ: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: Option<String>,
    pub prefix: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    pub auth: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub claims: Vec<RawClaimRequirement>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaimHeader {
    pub claim: String,
    pub header: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutbound {
    pub listen: Option<String>,
    #[serde(default)]
    pub services: Vec<RawService>,
    pub upstream_timeout_secs: Option<u64>,
    pub upstream_connect_timeout_secs: Option<u64>,
    #[serde(default)]
    pub limits: RawLimits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: String,
    pub upstream: String,
    pub tls: Option<RawClientTls>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientTls {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub max_entries: Option<usize>,
}

impl RawConfig {
    /// Applies the `PORTCULLIS_*` environment variables that Kubernetes sets per pod:
    /// `PORTCULLIS_INBOUND_LISTEN`, `PORTCULLIS_INBOUND_UPSTREAM`, `PORTCULLIS_ADMIN_LISTEN`
    /// and `PORTCULLIS_OUTBOUND_LISTEN` (the last only when the file has an `[outbound]`).
    pub fn with_env_overrides(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<RawConfig, ConfigError> {
        if let Some(value) = lookup("PORTCULLIS_INBOUND_LISTEN") {
            self.inbound.listen = Some(value);
        }
        if let Some(value) = lookup("PORTCULLIS_INBOUND_UPSTREAM") {
            self.inbound.upstream = value;
        }
        if let Some(value) = lookup("PORTCULLIS_ADMIN_LISTEN") {
            self.admin.listen = Some(value);
        }
        if let Some(value) = lookup("PORTCULLIS_OUTBOUND_LISTEN") {
            match self.outbound.as_mut() {
                Some(outbound) => outbound.listen = Some(value),
                None => {
                    return Err(ConfigError::invalid(
                        "PORTCULLIS_OUTBOUND_LISTEN",
                        "is set but the config file has no [outbound] section; add one or unset the variable",
                    ))
                }
            }
        }
        Ok(self)
    }

    /// Checks every field and builds the typed [`Config`]. Relative paths are resolved against
    /// `base_dir`, the folder of the config file.
    pub fn validate(self, base_dir: &Path) -> Result<Config, ConfigError> {
        let resolve = |path: PathBuf| {
            if path.is_absolute() {
                path
            } else {
                base_dir.join(path)
            }
        };

        let inbound = InboundConfig {
            listen: parse_addr(
                "inbound.listen",
                self.inbound
                    .listen
                    .as_deref()
                    .unwrap_or(DEFAULT_INBOUND_LISTEN),
            )?,
            upstream: parse_http_uri("inbound.upstream", &self.inbound.upstream, false)?,
            tls: self.inbound.tls.map(|tls| ServerTlsConfig {
                cert: resolve(tls.cert),
                key: resolve(tls.key),
                client_ca: tls.client_ca.map(resolve),
            }),
            realm: validate_realm(self.inbound.realm.as_deref().unwrap_or(DEFAULT_REALM))?,
            forward_authorization: self.inbound.forward_authorization.unwrap_or(true),
            upstream_timeout: secs(
                "inbound.upstream_timeout_secs",
                self.inbound.upstream_timeout_secs,
                DEFAULT_UPSTREAM_TIMEOUT_SECS,
            )?,
            upstream_connect_timeout: positive_secs(
                "inbound.upstream_connect_timeout_secs",
                self.inbound.upstream_connect_timeout_secs,
                DEFAULT_UPSTREAM_CONNECT_TIMEOUT_SECS,
            )?,
            upstream_max_connections: validate_max_connections(
                "inbound.upstream_max_connections",
                self.inbound.upstream_max_connections,
            )?,
            upstream_http2: self.inbound.upstream_http2.unwrap_or(false),
            case_insensitive_routes: self.inbound.case_insensitive_routes.unwrap_or(false),
            limits: self.inbound.limits.validate("inbound.limits")?,
        };

        if self.providers.is_empty() {
            return Err(ConfigError::invalid(
                "providers",
                "at least one [[providers]] entry is required: the sidecar cannot verify tokens without an issuer and its keys",
            ));
        }
        let providers = self
            .providers
            .into_iter()
            .enumerate()
            .map(|(index, raw)| validate_provider(index, raw, &resolve))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(
            "providers.issuer",
            providers.iter().map(|p| p.issuer.as_str()),
        )?;

        let routes = self
            .routes
            .into_iter()
            .enumerate()
            .map(|(index, raw)| validate_route(index, raw))
            .collect::<Result<Vec<_>, _>>()?;
        let routes = fold_route_case(routes, inbound.case_insensitive_routes);

        let claim_headers = self
            .claim_headers
            .into_iter()
            .enumerate()
            .map(|(index, raw)| validate_claim_header(index, raw))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(
            "claim_headers.header",
            claim_headers.iter().map(|c| c.header.as_str()),
        )?;

        let token_sources = validate_token_sources(self.token_sources)?;

        let outbound = self
            .outbound
            .map(|raw| validate_outbound(raw, &resolve))
            .transpose()?;

        let admin = AdminConfig {
            listen: parse_addr(
                "admin.listen",
                self.admin.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN),
            )?,
        };

        Ok(Config {
            inbound,
            providers,
            routes,
            claim_headers,
            token_sources,
            outbound,
            admin,
            cache: CacheConfig {
                max_entries: self.cache.max_entries.unwrap_or(DEFAULT_CACHE_ENTRIES),
            },
            shutdown_grace: secs(
                "shutdown_grace_secs",
                self.shutdown_grace_secs,
                DEFAULT_SHUTDOWN_GRACE_SECS,
            )?,
            worker_threads: validate_worker_threads(self.worker_threads)?,
        })
    }
}

/// Envoy's default circuit breakers allow 1024 connections and 1024 requests to one cluster.
/// Portcullis makes further requests wait for a slot instead of failing them with 503.
const DEFAULT_UPSTREAM_MAX_CONNECTIONS: usize = 1024;

fn validate_max_connections(field: &str, value: Option<usize>) -> Result<usize, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::invalid(
            field,
            "0 would let no request through; use at least 1",
        )),
        Some(count) => Ok(count),
        None => Ok(DEFAULT_UPSTREAM_MAX_CONNECTIONS),
    }
}

/// More threads than this would only add scheduling overhead on any machine a sidecar runs on.
const MAX_WORKER_THREADS: usize = 256;

fn validate_worker_threads(value: Option<usize>) -> Result<Option<usize>, ConfigError> {
    match value {
        Some(count) if count == 0 || count > MAX_WORKER_THREADS => Err(ConfigError::invalid(
            "worker_threads",
            format!("{count} is out of range; use 1 to {MAX_WORKER_THREADS}, or leave it out to use one thread per available CPU"),
        )),
        _ => Ok(value),
    }
}

fn validate_provider(
    index: usize,
    raw: RawProvider,
    resolve: &impl Fn(PathBuf) -> PathBuf,
) -> Result<ProviderConfig, ConfigError> {
    let field = |name: &str| format!("providers[{index}].{name}");

    if raw.issuer.is_empty() {
        return Err(ConfigError::invalid(
            field("issuer"),
            "must not be empty; use the exact `iss` value of the tokens, such as https://localhost:8443",
        ));
    }
    if raw.audiences.is_empty() || raw.audiences.iter().any(String::is_empty) {
        return Err(ConfigError::invalid(
            field("audiences"),
            "list at least one non-empty audience, such as [\"orders\"]",
        ));
    }
    let jwks = match (raw.jwks_uri, raw.jwks_file) {
        (Some(uri), None) => JwksSource::Uri(parse_http_uri(&field("jwks_uri"), &uri, true)?),
        (None, Some(path)) => JwksSource::File(resolve(path)),
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                field("jwks_uri"),
                "set either jwks_uri or jwks_file, not both",
            ))
        }
        (None, None) => JwksSource::Discovery(discovery_uri(&raw.issuer).ok_or_else(|| {
            ConfigError::invalid(
                field("jwks_uri"),
                format!("missing: set jwks_uri (such as https://localhost:8443/.well-known/jwks.json) or jwks_file, or use an http:// or https:// issuer so its keys can be found by OpenID Connect discovery (`{}` is not one)", raw.issuer),
            )
        })?),
    };

    let names = raw
        .algorithms
        .unwrap_or_else(|| vec!["RS256".into(), "ES256".into(), "EdDSA".into()]);
    if names.is_empty() {
        return Err(ConfigError::invalid(
            field("algorithms"),
            "must list at least one algorithm, such as [\"RS256\"]",
        ));
    }
    let algorithms = names
        .iter()
        .map(|name| {
            parse_algorithm(name).ok_or_else(|| {
                ConfigError::invalid(
                    field("algorithms"),
                    format!(
                        "`{name}` is not supported; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA (HMAC algorithms and `none` are never accepted)"
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let refresh_interval = secs(
        &field("refresh_interval_secs"),
        raw.refresh_interval_secs,
        DEFAULT_REFRESH_SECS,
    )?;
    if refresh_interval.is_zero() {
        return Err(ConfigError::invalid(
            field("refresh_interval_secs"),
            "must be at least 1",
        ));
    }

    let fetch_timeout = secs(
        &field("fetch_timeout_secs"),
        raw.fetch_timeout_secs,
        DEFAULT_FETCH_TIMEOUT_SECS,
    )?;
    let max_key_staleness = secs(
        &field("max_key_staleness_secs"),
        raw.max_key_staleness_secs,
        DEFAULT_MAX_KEY_STALENESS_SECS,
    )?;
    if max_key_staleness <= refresh_interval + fetch_timeout {
        return Err(ConfigError::invalid(
            field("max_key_staleness_secs"),
            format!(
                "{} seconds would let the keys go stale before a routine refresh finishes; use more than refresh_interval_secs + fetch_timeout_secs ({} seconds)",
                max_key_staleness.as_secs(),
                (refresh_interval + fetch_timeout).as_secs()
            ),
        ));
    }
    // No default: lifetimes are the issuer's policy, and RFC 9068 sets no upper bound.
    let max_token_lifetime = raw
        .max_token_lifetime_secs
        .map(|value| secs(&field("max_token_lifetime_secs"), Some(value), 0))
        .transpose()?;
    if max_token_lifetime.is_some_and(|lifetime| lifetime.is_zero()) {
        return Err(ConfigError::invalid(
            field("max_token_lifetime_secs"),
            "must be at least 1; remove the field to accept any lifetime",
        ));
    }
    let required_typ = raw
        .require_typ
        .map(|typ| normalize_typ(&typ).ok_or(typ))
        .transpose()
        .map_err(|typ| {
            ConfigError::invalid(
                field("require_typ"),
                format!(
                    "`{typ}` is not a media type name; use \"at+jwt\" for RFC 9068 access tokens"
                ),
            )
        })?;

    Ok(ProviderConfig {
        issuer: raw.issuer,
        audiences: raw.audiences,
        jwks,
        ca_file: raw.ca_file.map(resolve),
        algorithms,
        leeway: secs(&field("leeway_secs"), raw.leeway_secs, DEFAULT_LEEWAY_SECS)?,
        refresh_interval,
        unknown_kid_cooldown: secs(
            &field("unknown_kid_cooldown_secs"),
            raw.unknown_kid_cooldown_secs,
            DEFAULT_UNKNOWN_KID_COOLDOWN_SECS,
        )?,
        fetch_timeout,
        max_key_staleness,
        max_token_lifetime,
        required_typ,
    })
}

/// Returns the OpenID Connect discovery URI of an http(s) issuer: the issuer without a
/// trailing `/`, followed by `/.well-known/openid-configuration` (OpenID Connect Discovery
/// 1.0, section 4).
fn discovery_uri(issuer: &str) -> Option<Uri> {
    let base: Uri = issuer.parse().ok()?;
    if !matches!(base.scheme_str(), Some("http" | "https")) || base.host().is_none() {
        return None;
    }
    if base.query().is_some() {
        return None;
    }
    let uri = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    uri.parse().ok()
}

fn validate_route(index: usize, raw: RawRoute) -> Result<RouteRule, ConfigError> {
    let field = |name: &str| format!("routes[{index}].{name}");

    let path = match (raw.path, raw.prefix) {
        (Some(path), None) => PathMatch::Exact(check_route_path(&field("path"), path)?),
        (None, Some(prefix)) => {
            let prefix = check_route_path(&field("prefix"), prefix)?;
            let trimmed = prefix.trim_end_matches('/');
            PathMatch::Prefix(if trimmed.is_empty() {
                "/".into()
            } else {
                trimmed.into()
            })
        }
        _ => {
            return Err(ConfigError::invalid(
                field("path"),
                "set exactly one of `path` (exact match) or `prefix`",
            ))
        }
    };

    let methods = raw
        .methods
        .iter()
        .map(|name| {
            Method::from_bytes(name.to_ascii_uppercase().as_bytes()).map_err(|_| {
                ConfigError::invalid(field("methods"), format!("`{name}` is not an HTTP method"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    let auth = match raw.auth.as_deref() {
        None | Some("required") => AuthRequirement::Required,
        Some("none") => AuthRequirement::None,
        Some(other) => {
            return Err(ConfigError::invalid(
                field("auth"),
                format!("`{other}` is not valid; use \"required\" (the default) or \"none\""),
            ))
        }
    };
    if auth == AuthRequirement::None && !raw.scopes.is_empty() {
        return Err(ConfigError::invalid(
            field("scopes"),
            "a route with auth = \"none\" cannot require scopes; remove one of them",
        ));
    }
    if let Some(bad) = raw.scopes.iter().find(|s| s.is_empty() || s.contains(' ')) {
        return Err(ConfigError::invalid(
            field("scopes"),
            format!("`{bad}` is not a scope token; scopes are non-empty and contain no spaces"),
        ));
    }

    if auth == AuthRequirement::None && !raw.claims.is_empty() {
        return Err(ConfigError::invalid(
            field("claims"),
            "a route with auth = \"none\" cannot require claims; remove one of them",
        ));
    }
    let claims = validate_claim_requirements(index, raw.claims)?;

    Ok(RouteRule {
        path,
        methods,
        auth,
        scopes: raw.scopes,
        claims,
    })
}

fn check_route_path(field: &str, path: String) -> Result<String, ConfigError> {
    if !path.starts_with('/') {
        return Err(ConfigError::invalid(
            field,
            format!("`{path}` must start with `/`"),
        ));
    }
    Ok(path)
}

fn validate_claim_header(index: usize, raw: RawClaimHeader) -> Result<ClaimHeader, ConfigError> {
    let field = format!("claim_headers[{index}].header");
    let lower = raw.header.to_ascii_lowercase();
    if !lower.starts_with(IDENTITY_HEADER_PREFIX) {
        return Err(ConfigError::invalid(
            field,
            format!(
                "`{}` must start with `{IDENTITY_HEADER_PREFIX}` so that client-sent copies are always stripped",
                raw.header
            ),
        ));
    }
    let header = HeaderName::from_bytes(lower.as_bytes()).map_err(|_| {
        ConfigError::invalid(
            format!("claim_headers[{index}].header"),
            format!("`{}` is not a valid header name", raw.header),
        )
    })?;
    if raw.claim.is_empty() {
        return Err(ConfigError::invalid(
            format!("claim_headers[{index}].claim"),
            "must name a claim, such as \"client_id\"",
        ));
    }
    Ok(ClaimHeader {
        claim: raw.claim,
        header,
    })
}

fn validate_outbound(
    raw: RawOutbound,
    resolve: &impl Fn(PathBuf) -> PathBuf,
) -> Result<OutboundConfig, ConfigError> {
    let listen = parse_addr(
        "outbound.listen",
        raw.listen.as_deref().unwrap_or("127.0.0.1:15001"),
    )?;
    if !listen.ip().is_loopback() {
        return Err(ConfigError::invalid(
            "outbound.listen",
            format!("`{listen}` is not a loopback address; the outbound listener serves only the local app, so use 127.0.0.1"),
        ));
    }

    let services = raw
        .services
        .into_iter()
        .enumerate()
        .map(|(index, service)| {
            let field = |name: &str| format!("outbound.services[{index}].{name}");
            if service.name.is_empty() || service.name.contains([':', '/', ' ']) {
                return Err(ConfigError::invalid(
                    field("name"),
                    format!(
                        "`{}` must be a bare host name the app uses, such as \"inventory\"",
                        service.name
                    ),
                ));
            }
            Ok(OutboundService {
                name: service.name.to_ascii_lowercase(),
                upstream: parse_http_uri(&field("upstream"), &service.upstream, true)?,
                tls: service.tls.map(|tls| ClientTlsConfig {
                    ca: resolve(tls.ca),
                    cert: tls.cert.map(resolve),
                    key: tls.key.map(resolve),
                    server_name: tls.server_name,
                }),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_unique(
        "outbound.services.name",
        services.iter().map(|s| s.name.as_str()),
    )?;

    Ok(OutboundConfig {
        listen,
        services,
        upstream_timeout: secs(
            "outbound.upstream_timeout_secs",
            raw.upstream_timeout_secs,
            DEFAULT_UPSTREAM_TIMEOUT_SECS,
        )?,
        upstream_connect_timeout: positive_secs(
            "outbound.upstream_connect_timeout_secs",
            raw.upstream_connect_timeout_secs,
            DEFAULT_UPSTREAM_CONNECT_TIMEOUT_SECS,
        )?,
        limits: raw.limits.validate("outbound.limits")?,
    })
}

fn parse_addr(field: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::invalid(
            field,
            format!("`{value}` is not an IP address and port, such as 127.0.0.1:9901"),
        )
    })
}

/// Parses an absolute `http://` URI, or `https://` too when `allow_https` is set.
fn parse_http_uri(field: &str, value: &str, allow_https: bool) -> Result<Uri, ConfigError> {
    let uri: Uri = value
        .parse()
        .map_err(|_| ConfigError::invalid(field, format!("`{value}` is not a valid URI")))?;
    let scheme_ok = match uri.scheme_str() {
        Some("http") => true,
        Some("https") => allow_https,
        _ => false,
    };
    if !scheme_ok || uri.host().is_none() {
        let expected = if allow_https {
            "an absolute http:// or https:// URI"
        } else {
            "an absolute http:// URI, such as http://127.0.0.1:8081"
        };
        return Err(ConfigError::invalid(
            field,
            format!("`{value}` must be {expected}"),
        ));
    }
    Ok(uri)
}

fn validate_realm(realm: &str) -> Result<String, ConfigError> {
    if realm.is_empty() || realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
        return Err(ConfigError::invalid(
            "inbound.realm",
            format!(
                "`{realm}` must be non-empty with no quotes, backslashes or control characters"
            ),
        ));
    }
    Ok(realm.to_owned())
}

pub(super) fn secs(field: &str, value: Option<u64>, default: u64) -> Result<Duration, ConfigError> {
    let value = value.unwrap_or(default);
    // A day is far beyond any sensible timeout or interval here; larger values are typos.
    if value > 86_400 {
        return Err(ConfigError::invalid(
            field,
            format!("{value} seconds is more than a day; use a smaller value"),
        ));
    }
    Ok(Duration::from_secs(value))
}
