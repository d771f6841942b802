//! The token-related parts of the configuration: where a request may carry its token
//! (`[token_sources]`) and the claim requirements of a route (`[[routes.claims]]`).

use serde::Deserialize;
use serde_json::Value;

use super::ConfigError;

/// The query parameter RFC 6750 section 2.3 defines for bearer tokens.
pub const STANDARD_QUERY_PARAMETER: &str = "access_token";

/// Where the sidecar looks for a token besides the `Authorization` header.
///
/// Both extra sources are off by default. A token in a URL ends up in browser history, proxy
/// logs and `Referer` headers (RFC 6750 section 5.3 advises against it), and a browser sends
/// a cookie on cross-site requests too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSources {
    /// Name of the query parameter that may carry the token.
    pub query_parameter: Option<String>,
    /// Name of the cookie that may carry the token.
    pub cookie: Option<String>,
}

impl TokenSources {
    /// Returns the query parameter whose presence next to another token makes a request
    /// ambiguous: the configured one, or `access_token` when the query source is off.
    pub fn ambiguous_query_parameter(&self) -> &str {
        self.query_parameter
            .as_deref()
            .unwrap_or(STANDARD_QUERY_PARAMETER)
    }
}

/// A condition on one claim of the verified token, checked per route after the scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequirement {
    /// Top-level claim name, compared exactly (a `.` is part of the name, not a path).
    pub claim: String,
    pub condition: ClaimCondition,
}

/// The condition a claim must meet. Values are JSON strings, integers or booleans, compared
/// with the claim's JSON value of the same type, so the string `"5"` never equals `5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimCondition {
    /// The claim equals this value.
    Equals(Value),
    /// The claim equals one of these values.
    OneOf(Vec<Value>),
    /// The claim is an array with an element equal to this value.
    Contains(Value),
    /// The claim is present and not `null`.
    Present,
}

/// `[token_sources]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenSources {
    pub query_parameter: Option<String>,
    pub cookie: Option<String>,
}

/// One `[[routes.claims]]` entry as written: `claim` and exactly one condition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClaimRequirement {
    pub claim: String,
    pub equals: Option<toml::Value>,
    pub one_of: Option<Vec<toml::Value>>,
    pub contains: Option<toml::Value>,
    pub present: Option<bool>,
}

/// Checks `[token_sources]`: each name must be a non-empty token without characters that
/// end or split a query parameter or cookie name.
pub fn validate_token_sources(raw: RawTokenSources) -> Result<TokenSources, ConfigError> {
    let check = |field: &str, name: Option<String>| {
        match name {
        Some(name) if !is_plain_name(&name) => Err(ConfigError::invalid(
            field,
            format!("`{name}` is not a usable name; use letters, digits, `-`, `_` or `.`, such as \"access_token\""),
        )),
        other => Ok(other),
    }
    };
    Ok(TokenSources {
        query_parameter: check("token_sources.query_parameter", raw.query_parameter)?,
        cookie: check("token_sources.cookie", raw.cookie)?,
    })
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks the claim requirements of route `route_index`.
pub fn validate_claim_requirements(
    route_index: usize,
    raw: Vec<RawClaimRequirement>,
) -> Result<Vec<ClaimRequirement>, ConfigError> {
    raw.into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let field = |name: &str| format!("routes[{route_index}].claims[{index}].{name}");
            validate_claim_requirement(entry, &field)
        })
        .collect()
}

fn validate_claim_requirement(
    raw: RawClaimRequirement,
    field: &impl Fn(&str) -> String,
) -> Result<ClaimRequirement, ConfigError> {
    if raw.claim.is_empty() {
        return Err(ConfigError::invalid(
            field("claim"),
            "must name a claim, such as \"tenant\"",
        ));
    }
    let mut conditions = Vec::new();
    if let Some(value) = raw.equals {
        conditions.push(ClaimCondition::Equals(scalar(&field("equals"), value)?));
    }
    if let Some(values) = raw.one_of {
        if values.is_empty() {
            return Err(ConfigError::invalid(
                field("one_of"),
                "must list at least one value",
            ));
        }
        let values = values
            .into_iter()
            .map(|value| scalar(&field("one_of"), value))
            .collect::<Result<Vec<_>, _>>()?;
        conditions.push(ClaimCondition::OneOf(values));
    }
    if let Some(value) = raw.contains {
        conditions.push(ClaimCondition::Contains(scalar(&field("contains"), value)?));
    }
    match raw.present {
        Some(true) => conditions.push(ClaimCondition::Present),
        Some(false) => {
            return Err(ConfigError::invalid(
                field("present"),
                "only `present = true` is supported; remove the entry to allow a missing claim",
            ))
        }
        None => {}
    }

    let condition = match conditions.len() {
        1 => conditions.remove(0),
        found => {
            return Err(ConfigError::invalid(
                field("claim"),
                format!(
                    "set exactly one of `equals`, `one_of`, `contains` or `present` for claim `{}` (found {found})",
                    raw.claim
                ),
            ))
        }
    };
    Ok(ClaimRequirement {
        claim: raw.claim,
        condition,
    })
}

/// Converts a TOML string, integer or boolean into the JSON value a claim is compared with.
fn scalar(field: &str, value: toml::Value) -> Result<Value, ConfigError> {
    match value {
        toml::Value::String(text) => Ok(Value::String(text)),
        toml::Value::Integer(number) => Ok(Value::from(number)),
        toml::Value::Boolean(flag) => Ok(Value::Bool(flag)),
        other => Err(ConfigError::invalid(
            field,
            format!(
                "`{other}` is a {}; use a string, an integer or a boolean",
                other.type_str()
            ),
        )),
    }
}

/// Normalizes a `typ` value for comparison: RFC 7515 section 4.1.9 compares media types
/// case-insensitively and lets `application/` be left out. Returns `None` for a value that
/// is not a media type name.
pub fn normalize_typ(typ: &str) -> Option<String> {
    let lower = typ.to_ascii_lowercase();
    let name = lower.strip_prefix("application/").unwrap_or(&lower);
    let valid = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                )
        });
    valid.then(|| name.to_owned())
}
