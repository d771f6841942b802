//! Narrowing of scopes and audiences: a request may ask for a subset of what the client, or
//! the refresh token, allows, and never for more.

use super::error::{ErrorCode, OAuthError};
use crate::config::is_scope_token;

/// A narrowed request parameter, `scope` or `audience`, with the rules that differ between them.
struct Parameter {
    /// Name of the request parameter, and of one of its values in error messages.
    name: &'static str,
    /// Error code for a value that is blank, malformed or not allowed.
    code: ErrorCode,
    /// Syntax check for one value, or `None` when any value without spaces is well formed.
    is_well_formed: Option<fn(&str) -> bool>,
}

const SCOPE: Parameter = Parameter {
    name: "scope",
    code: ErrorCode::InvalidScope,
    is_well_formed: Some(is_scope_token),
};

/// RFC 8707 section 2 names `invalid_target` for an audience the client may not request.
const AUDIENCE: Parameter = Parameter {
    name: "audience",
    code: ErrorCode::InvalidTarget,
    is_well_formed: None,
};

/// Resolves the `scope` parameter against `allowed`. No parameter grants all of `allowed`;
/// otherwise the result keeps the order of `allowed`, without duplicates.
///
/// # Errors
///
/// `invalid_scope` naming the first scope that is malformed or not allowed.
pub(crate) fn narrow_scopes(
    requested: Option<&str>,
    allowed: &[String],
) -> Result<Vec<String>, OAuthError> {
    narrow(&SCOPE, requested, allowed)
}

/// Resolves the space-separated `audience` parameter against `allowed`, as
/// [`narrow_scopes`] does for scopes.
///
/// # Errors
///
/// `invalid_target` (RFC 8707 section 2) naming the first audience that is not allowed.
pub(crate) fn narrow_audiences(
    requested: Option<&str>,
    allowed: &[String],
) -> Result<Vec<String>, OAuthError> {
    narrow(&AUDIENCE, requested, allowed)
}

/// Resolves the space-separated value of `parameter` against `allowed`, returning the
/// requested subset in the order of `allowed`.
fn narrow(
    parameter: &Parameter,
    requested: Option<&str>,
    allowed: &[String],
) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(allowed.to_vec());
    };
    let name = parameter.name;
    let requested: Vec<&str> = requested
        .split(' ')
        .filter(|value| !value.is_empty())
        .collect();
    if requested.is_empty() {
        return Err(OAuthError::new(
            parameter.code,
            format!(
                "the {name} parameter contains only spaces; omit it to request every allowed {name}"
            ),
        ));
    }
    for value in &requested {
        if parameter.is_well_formed.is_some_and(|check| !check(value)) {
            return Err(OAuthError::new(
                parameter.code,
                format!("{name} {value:?} is malformed; separate {name}s with single spaces"),
            ));
        }
        if !allowed.iter().any(|allowed| allowed == value) {
            return Err(OAuthError::new(
                parameter.code,
                format!(
                    "{name} {value:?} is not allowed; request a subset of: {}",
                    allowed.join(" ")
                ),
            ));
        }
    }
    Ok(subset_in_order(allowed, &requested))
}

fn subset_in_order(allowed: &[String], requested: &[&str]) -> Vec<String> {
    allowed
        .iter()
        .filter(|value| requested.contains(&value.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["foo".to_owned(), "bar".to_owned()]
    }

    #[test]
    fn missing_scope_grants_all() {
        assert_eq!(narrow_scopes(None, &allowed()).unwrap(), allowed());
    }

    #[test]
    fn scope_subset_keeps_configured_order() {
        assert_eq!(
            narrow_scopes(Some("bar foo bar"), &allowed()).unwrap(),
            ["foo", "bar"]
        );
        assert_eq!(narrow_scopes(Some("bar"), &allowed()).unwrap(), ["bar"]);
    }

    #[test]
    fn unknown_scope_is_invalid_scope() {
        let error = narrow_scopes(Some("foo admin"), &allowed()).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidScope);
        assert!(
            error.description.contains("\"admin\""),
            "{}",
            error.description
        );

        let malformed = narrow_scopes(Some("fo\"o"), &allowed()).unwrap_err();
        assert_eq!(malformed.code, ErrorCode::InvalidScope);

        let blank = narrow_scopes(Some("  "), &allowed()).unwrap_err();
        assert_eq!(blank.code, ErrorCode::InvalidScope);
    }

    #[test]
    fn audience_narrows_or_is_invalid_target() {
        let audiences = vec!["orders".to_owned(), "inventory".to_owned()];
        assert_eq!(
            narrow_audiences(Some("inventory"), &audiences).unwrap(),
            ["inventory"]
        );
        assert_eq!(narrow_audiences(None, &audiences).unwrap(), audiences);

        let error = narrow_audiences(Some("payments"), &audiences).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidTarget);
        assert!(
            error.description.contains("\"payments\""),
            "{}",
            error.description
        );

        let blank = narrow_audiences(Some("  "), &audiences).unwrap_err();
        assert_eq!(blank.code, ErrorCode::InvalidTarget);
        assert!(
            blank.description.contains("audience parameter"),
            "{}",
            blank.description
        );
    }
}
