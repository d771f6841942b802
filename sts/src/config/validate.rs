//! Startup validation: turns an [`StsConfig`] into [`Settings`] or an error naming the field
//! and the fix.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use rustls::pki_types::ServerName;

use super::{ClientConfig, GrantType, SigningAlgorithm, StsConfig, TlsMode, UserConfig};
use crate::credentials::check_phc_hash;
use crate::error::StsError;

/// Upper bound of an access token lifetime. Access tokens cannot be revoked before they
/// expire, so a day is the most this service accepts.
pub(crate) const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 60 * 60;

/// Upper bound of a refresh token lifetime. Refresh tokens live only in memory and a
/// restart discards them, so a longer lifetime would rarely take effect.
pub(crate) const MAX_REFRESH_TOKEN_LIFETIME_SECS: u64 = 30 * 24 * 60 * 60;

/// A validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub listen: SocketAddr,
    pub issuer: String,
    pub data_dir: PathBuf,
    pub signing_algorithm: SigningAlgorithm,
    pub refresh_token_lifetime_secs: u64,
    pub tls: TlsMode,
    pub tls_hostnames: Vec<String>,
    pub clients: Vec<ClientSettings>,
    pub users: Vec<UserConfig>,
    /// Maximum access token lifetime of any client, in seconds.
    pub max_token_lifetime_secs: u64,
}

/// A validated client registration.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    pub id: String,
    pub secret_hash: String,
    pub grants: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub token_lifetime_secs: u64,
}

impl ClientSettings {
    pub(crate) fn allows(&self, grant: GrantType) -> bool {
        self.grants.contains(&grant)
    }
}

/// Checks every field of `config`.
///
/// # Errors
///
/// [`StsError::InvalidConfig`] for the first invalid field, naming it and the fix.
pub(crate) fn validate(config: &StsConfig) -> Result<Settings, StsError> {
    check_issuer(&config.issuer).map_err(|problem| invalid("issuer", problem))?;

    if config.data_dir.as_os_str().is_empty() {
        return Err(invalid(
            "data_dir",
            "the path is empty; set a directory for keys and TLS files",
        ));
    }

    check_range(
        "refresh_token_lifetime_secs",
        config.refresh_token_lifetime_secs,
        MAX_REFRESH_TOKEN_LIFETIME_SECS,
    )?;

    check_tls(config)?;

    if config.clients.is_empty() {
        return Err(invalid(
            "clients",
            "no client is configured; add a [[clients]] table",
        ));
    }
    let mut client_ids = HashSet::new();
    let mut clients = Vec::with_capacity(config.clients.len());
    for (index, client) in config.clients.iter().enumerate() {
        let field = format!("clients[{index}]");
        if !client_ids.insert(client.id.as_str()) {
            return Err(invalid(
                &format!("{field}.id"),
                format!(
                    "client id {:?} is configured twice; give each client its own id",
                    client.id
                ),
            ));
        }
        clients.push(check_client(&field, client)?);
    }

    let mut usernames = HashSet::new();
    for (index, user) in config.users.iter().enumerate() {
        let field = format!("users[{index}]");
        check_name(&format!("{field}.username"), &user.username)?;
        if !usernames.insert(user.username.as_str()) {
            return Err(invalid(
                &format!("{field}.username"),
                format!(
                    "user {:?} is configured twice; remove one of the entries",
                    user.username
                ),
            ));
        }
        check_phc_hash(&user.password_hash)
            .map_err(|problem| invalid(&format!("{field}.password_hash"), problem))?;
    }

    Ok(Settings {
        listen: config.listen,
        issuer: config.issuer.clone(),
        data_dir: config.data_dir.clone(),
        signing_algorithm: config.signing_algorithm,
        refresh_token_lifetime_secs: config.refresh_token_lifetime_secs,
        tls: config.tls.clone(),
        tls_hostnames: config.tls_hostnames.clone(),
        max_token_lifetime_secs: config.max_token_lifetime_secs(),
        clients,
        users: config.users.clone(),
    })
}

fn check_client(field: &str, client: &ClientConfig) -> Result<ClientSettings, StsError> {
    check_name(&format!("{field}.id"), &client.id)?;
    check_phc_hash(&client.secret_hash)
        .map_err(|problem| invalid(&format!("{field}.secret_hash"), problem))?;

    let grants_field = format!("{field}.grants");
    if client.grants.is_empty() {
        return Err(invalid(
            &grants_field,
            "the list is empty; allow at least one of \"password\", \"client_credentials\", \"refresh_token\"",
        ));
    }
    check_unique(
        &grants_field,
        client.grants.iter().map(|grant| grant.as_str()),
    )?;

    let scopes_field = format!("{field}.scopes");
    if client.scopes.is_empty() {
        return Err(invalid(
            &scopes_field,
            "the list is empty; allow at least one scope",
        ));
    }
    for scope in &client.scopes {
        if !is_scope_token(scope) {
            return Err(invalid(
                &scopes_field,
                format!(
                    "{scope:?} is not a valid scope; use printable ASCII without spaces, '\"' or '\\'"
                ),
            ));
        }
    }
    check_unique(&scopes_field, client.scopes.iter().map(String::as_str))?;

    let audiences_field = format!("{field}.audiences");
    if client.audiences.is_empty() {
        return Err(invalid(
            &audiences_field,
            "the list is empty; name at least one audience, such as \"orders\"",
        ));
    }
    for audience in &client.audiences {
        if audience.is_empty()
            || audience
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                &audiences_field,
                format!(
                    "{audience:?} is not a valid audience; use a non-empty value without spaces"
                ),
            ));
        }
    }
    check_unique(
        &audiences_field,
        client.audiences.iter().map(String::as_str),
    )?;

    check_range(
        &format!("{field}.token_lifetime_secs"),
        client.token_lifetime_secs,
        MAX_TOKEN_LIFETIME_SECS,
    )?;

    Ok(ClientSettings {
        id: client.id.clone(),
        secret_hash: client.secret_hash.clone(),
        grants: client.grants.clone(),
        scopes: client.scopes.clone(),
        audiences: client.audiences.clone(),
        token_lifetime_secs: client.token_lifetime_secs,
    })
}

fn check_tls(config: &StsConfig) -> Result<(), StsError> {
    match &config.tls {
        TlsMode::Generated => {
            for name in &config.tls_hostnames {
                if ServerName::try_from(name.as_str()).is_err() {
                    return Err(invalid(
                        "tls_hostnames",
                        format!("{name:?} is neither a DNS name nor an IP address"),
                    ));
                }
            }
        }
        TlsMode::Files { cert, key } => {
            if cert.as_os_str().is_empty() || key.as_os_str().is_empty() {
                return Err(invalid("tls", "`cert` and `key` must both name PEM files"));
            }
        }
        TlsMode::Disabled => {}
    }
    if config.tls != TlsMode::Generated && !config.tls_hostnames.is_empty() {
        return Err(invalid(
            "tls_hostnames",
            "the names apply only to the generated certificate; remove them or the [tls] setting",
        ));
    }
    Ok(())
}

/// Checks that the issuer is `http(s)://host[:port]`: metadata URLs are built by appending
/// fixed paths, and the listener serves those paths at the root.
fn check_issuer(issuer: &str) -> Result<(), String> {
    let authority = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .ok_or_else(|| format!("{issuer:?} does not start with https:// or http://"))?;
    if authority.is_empty() {
        return Err(format!("{issuer:?} has no host"));
    }
    if let Some(bad) = authority
        .chars()
        .find(|c| matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{issuer:?} contains {bad:?}; use scheme://host[:port] without path, query or user"
        ));
    }
    Ok(())
}

fn check_name(field: &str, name: &str) -> Result<(), StsError> {
    if name.is_empty() {
        return Err(invalid(field, "the value is empty"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("{name:?} contains control characters; remove them"),
        ));
    }
    Ok(())
}

fn check_range(field: &str, value: u64, max: u64) -> Result<(), StsError> {
    if value == 0 || value > max {
        return Err(invalid(
            field,
            format!("{value} is out of range; use 1 to {max} seconds"),
        ));
    }
    Ok(())
}

fn check_unique<'a>(field: &str, values: impl Iterator<Item = &'a str>) -> Result<(), StsError> {
    let mut seen = HashSet::new();
    for value in values {
        if !seen.insert(value) {
            return Err(invalid(
                field,
                format!("{value:?} is listed twice; remove the duplicate"),
            ));
        }
    }
    Ok(())
}

/// Returns whether `value` is a `scope-token` of RFC 6749 section 3.3: one or more of
/// `%x21 / %x23-5B / %x5D-7E`.
pub(crate) fn is_scope_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

fn invalid(field: &str, problem: impl Into<String>) -> StsError {
    StsError::InvalidConfig {
        field: field.to_owned(),
        problem: problem.into(),
    }
}
