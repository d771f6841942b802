//! Narrowing of scopes and audiences: a request may ask for a subset of what the client, or
//! the refresh token, allows, and never for more.

use super::error::{ErrorCode, OAuthError};
use crate::config::is_scope_token;

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
    let Some(requested) = requested else {
        return Ok(allowed.to_vec());
    };
    let requested: Vec<&str> = requested
        .split(' ')
        .filter(|scope| !scope.is_empty())
        .collect();
    if requested.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "the scope parameter contains only spaces; omit it to request every allowed scope",
        ));
    }
    for scope in &requested {
        if !is_scope_token(scope) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("scope {scope:?} is malformed; separate scopes with single spaces"),
            ));
        }
        if !allowed.iter().any(|allowed| allowed == scope) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!(
                    "scope {scope:?} is not allowed; request a subset of: {}",
                    allowed.join(" ")
                ),
            ));
        }
    }
    Ok(subset_in_order(allowed, &requested))
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
    let Some(requested) = requested else {
        return Ok(allowed.to_vec());
    };
    let requested: Vec<&str> = requested
        .split(' ')
        .filter(|audience| !audience.is_empty())
        .collect();
    if requested.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "the audience parameter contains only spaces; omit it to request every allowed audience",
        ));
    }
    if let Some(audience) = requested
        .iter()
        .find(|audience| !allowed.iter().any(|allowed| allowed == *audience))
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            format!(
                "audience {audience:?} is not allowed; request a subset of: {}",
                allowed.join(" ")
            ),
        ));
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
    }
}
