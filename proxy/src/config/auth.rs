//! The token-related parts of the configuration: where a request may carry its token
//! (`[token_sources]`) and the claim requirements of a route (`[[routes.claims]]`).

use serde::Deserialize;
use serde_json::Value;

use super::ConfigError;

/// The query parameter RFC 6750 section 2.3 defines for bearer tokens.
pub const STANDARD_QUERY_PARAMETER: &str = "access_token";

/// The places besides the `Authorization` header that may carry a token.
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::config::{Config, JwksSource};

    const INBOUND: &str = "[inbound]\nupstream = \"http://127.0.0.1:8081\"\n";
    const PROVIDER: &str = "[[providers]]\nissuer = \"https://sts.test\"\naudiences = [\"orders\"]\njwks_uri = \"https://sts.test/jwks.json\"\n";

    fn parse(extra_provider: &str, rest: &str) -> Result<Config, ConfigError> {
        let text = format!("{INBOUND}{PROVIDER}{extra_provider}\n{rest}");
        Config::from_toml(&text, Path::new("/etc/portcullis"))
    }

    fn error_text(extra_provider: &str, rest: &str) -> String {
        match parse(extra_provider, rest) {
            Ok(_) => panic!("accepted: {extra_provider} {rest}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn token_defaults_are_strict() {
        let config = parse("", "").expect("valid");
        assert_eq!(config.token_sources, TokenSources::default());
        let provider = &config.providers[0];
        assert_eq!(provider.max_key_staleness, Duration::from_secs(86_400));
        assert_eq!(provider.max_token_lifetime, None);
        assert_eq!(provider.required_typ, None);
    }

    #[test]
    fn token_sources_are_validated() {
        let config = parse(
            "",
            "[token_sources]\nquery_parameter = \"access_token\"\ncookie = \"session\"\n",
        )
        .expect("valid");
        assert_eq!(
            config.token_sources.query_parameter.as_deref(),
            Some("access_token")
        );
        assert_eq!(config.token_sources.cookie.as_deref(), Some("session"));

        for bad in ["\"\"", "\"a=b\"", "\"a;b\"", "\"a b\""] {
            let text = error_text("", &format!("[token_sources]\ncookie = {bad}\n"));
            assert!(text.contains("token_sources.cookie"), "{bad}: {text}");
        }
    }

    #[test]
    fn claim_requirements_are_parsed() {
        let routes = r#"
[[routes]]
prefix = "/admin"
claims = [
  { claim = "tenant", equals = "acme" },
  { claim = "level", one_of = [1, 2] },
  { claim = "groups", contains = "admins" },
  { claim = "email_verified", present = true },
]
"#;
        let config = parse("", routes).expect("valid");
        let conditions: Vec<&ClaimCondition> = config.routes[0]
            .claims
            .iter()
            .map(|requirement| &requirement.condition)
            .collect();
        assert_eq!(
            conditions,
            [
                &ClaimCondition::Equals(json!("acme")),
                &ClaimCondition::OneOf(vec![json!(1), json!(2)]),
                &ClaimCondition::Contains(json!("admins")),
                &ClaimCondition::Present,
            ]
        );
    }

    #[test]
    fn claim_requirement_needs_one_condition() {
        let cases = [
            ("{ claim = \"a\" }", "exactly one"),
            (
                "{ claim = \"a\", equals = 1, present = true }",
                "exactly one",
            ),
            ("{ claim = \"a\", present = false }", "present = true"),
            ("{ claim = \"a\", equals = 1.5 }", "float"),
            ("{ claim = \"a\", equals = [1] }", "array"),
            ("{ claim = \"a\", one_of = [] }", "at least one"),
            ("{ claim = \"\", equals = 1 }", "must name a claim"),
        ];
        for (entry, expected) in cases {
            let text = error_text(
                "",
                &format!("[[routes]]\nprefix = \"/x\"\nclaims = [{entry}]\n"),
            );
            assert!(text.contains("routes[0].claims[0]"), "{entry}: {text}");
            assert!(text.contains(expected), "{entry}: {text}");
        }
        let open = error_text(
            "",
            "[[routes]]\nprefix = \"/x\"\nauth = \"none\"\nclaims = [{ claim = \"a\", present = true }]\n",
        );
        assert!(open.contains("routes[0].claims"), "{open}");
    }

    #[test]
    fn required_typ_is_normalized() {
        for (written, stored) in [("at+jwt", "at+jwt"), ("application/AT+JWT", "at+jwt")] {
            let config = parse(&format!("require_typ = {written:?}"), "").expect("valid");
            assert_eq!(config.providers[0].required_typ.as_deref(), Some(stored));
        }
        for bad in ["", "at jwt", "application/"] {
            let text = error_text(&format!("require_typ = {bad:?}"), "");
            assert!(text.contains("require_typ"), "{bad}: {text}");
        }
    }

    #[test]
    fn key_staleness_must_outlast_refresh() {
        let text = error_text(
            "refresh_interval_secs = 60\nmax_key_staleness_secs = 60",
            "",
        );
        assert!(text.contains("max_key_staleness_secs"), "{text}");
        let config = parse(
            "refresh_interval_secs = 60\nmax_key_staleness_secs = 66",
            "",
        )
        .expect("valid");
        assert_eq!(
            config.providers[0].max_key_staleness,
            Duration::from_secs(66)
        );
    }

    #[test]
    fn token_lifetime_must_be_positive() {
        let text = error_text("max_token_lifetime_secs = 0", "");
        assert!(text.contains("max_token_lifetime_secs"), "{text}");
        let config = parse("max_token_lifetime_secs = 600", "").expect("valid");
        assert_eq!(
            config.providers[0].max_token_lifetime,
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn provider_without_jwks_uses_discovery() {
        let text = format!(
            "{INBOUND}[[providers]]\nissuer = \"https://sts.test/\"\naudiences = [\"orders\"]\n"
        );
        let config = Config::from_toml(&text, Path::new("/")).expect("valid");
        let expected: http::Uri = "https://sts.test/.well-known/openid-configuration"
            .parse()
            .expect("URI");
        match &config.providers[0].jwks {
            JwksSource::Discovery(uri) => assert_eq!(uri, &expected),
            other => panic!("expected discovery, got {other:?}"),
        }

        let text = format!("{INBOUND}[[providers]]\nissuer = \"sts\"\naudiences = [\"orders\"]\n");
        let error = Config::from_toml(&text, Path::new("/")).expect_err("no URI issuer");
        assert!(error.to_string().contains("jwks_uri"), "{error}");
    }
}
