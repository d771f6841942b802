//! Claim checks on a payload whose signature has been verified (RFC 7519 section 4.1 and
//! RFC 9068): issuer, expiry, not-before, issued-at, audience, and the identity claims.

use std::sync::{Arc, OnceLock};

use super::json::Field;

use super::error::VerifyError;
use super::token::Claims;
use super::{IdentityText, VerifiedToken};
use crate::config::ProviderConfig;

/// Checks the claims against `provider` at `now` (seconds since the Unix epoch) and builds the
/// verified token, whose `issuer` is `issuer_text`, the provider's issuer as shared text.
/// `leeway` widens `exp` and `nbf` by the provider's allowed clock skew.
pub fn check(
    payload: &Claims<'_>,
    provider: &ProviderConfig,
    issuer_text: Arc<str>,
    now: i64,
) -> Result<VerifiedToken, VerifyError> {
    let leeway = i64::try_from(provider.leeway.as_secs()).unwrap_or(i64::MAX);

    let issuer = payload.iss.as_ref().and_then(Field::as_str);
    if issuer != Some(provider.issuer.as_str()) {
        return Err(VerifyError::WrongIssuer {
            issuer: issuer.map(str::to_owned),
        });
    }

    let expires_at = match &payload.exp {
        Some(value) => numeric_date("exp", value)?,
        None => {
            return Err(VerifyError::InvalidClaim {
                claim: "exp",
                problem: "is missing",
            })
        }
    };
    if expires_at.saturating_add(leeway) <= now {
        return Err(VerifyError::Expired {
            expired_at: expires_at,
        });
    }
    if let Some(value) = &payload.nbf {
        let not_before = numeric_date("nbf", value)?;
        if not_before.saturating_sub(leeway) > now {
            return Err(VerifyError::NotYetValid { not_before });
        }
    }
    let issued_at = payload
        .iat
        .as_ref()
        .map(|value| numeric_date("iat", value))
        .transpose()?;
    if let Some(max) = provider.max_token_lifetime {
        check_lifetime(issued_at, expires_at, max.as_secs(), leeway, now)?;
    }

    check_audience(payload.aud.as_ref(), &provider.audiences)?;

    let subject = optional_string(payload.sub.as_ref(), "sub")?;
    let client_id = optional_string(payload.client_id.as_ref(), "client_id")?;
    let scopes = match &payload.scope {
        Some(value) => scope_list("scope", value)?,
        None => match &payload.scp {
            Some(value) => scope_list("scp", value)?,
            None => Vec::new(),
        },
    };

    Ok(VerifiedToken {
        issuer: issuer_text,
        identity: IdentityText::new(subject, client_id, scopes.into_iter()),
        // Filled in by the caller, which owns the text `payload` borrows from.
        claims_json: Box::default(),
        claims: OnceLock::new(),
        expires_at: u64::try_from(expires_at).unwrap_or(0),
        identity_headers: OnceLock::new(),
    })
}

/// Checks `exp - iat` against `max` seconds. `iat` is required, and must not lie in the
/// future beyond the leeway: otherwise a token issued "later" would stay valid for longer
/// than `max` from now.
fn check_lifetime(
    issued_at: Option<i64>,
    expires_at: i64,
    max: u64,
    leeway: i64,
    now: i64,
) -> Result<(), VerifyError> {
    let Some(issued_at) = issued_at else {
        return Err(VerifyError::InvalidClaim {
            claim: "iat",
            problem: "is missing, but the issuer has a maximum token lifetime",
        });
    };
    if issued_at.saturating_sub(leeway) > now {
        return Err(VerifyError::InvalidClaim {
            claim: "iat",
            problem: "is in the future",
        });
    }
    let lifetime = expires_at.saturating_sub(issued_at);
    if lifetime > i64::try_from(max).unwrap_or(i64::MAX) {
        return Err(VerifyError::LifetimeTooLong { lifetime, max });
    }
    Ok(())
}

/// Reads a NumericDate: a JSON number of seconds since the Unix epoch. A fraction is dropped,
/// rounding toward the past, and values outside the `i64` range saturate. A string that
/// contains digits is not a number and fails.
fn numeric_date(claim: &'static str, value: &Field<'_>) -> Result<i64, VerifyError> {
    let Field::Number(number) = value else {
        return Err(VerifyError::InvalidClaim {
            claim,
            problem: "is not a number",
        });
    };
    if let Some(seconds) = number.as_i64() {
        return Ok(seconds);
    }
    if number.is_u64() {
        return Ok(i64::MAX);
    }
    // Only a fraction or a huge value remains; `as` saturates at the i64 bounds.
    let seconds = number.as_f64().unwrap_or(0.0).floor();
    Ok(seconds as i64)
}

/// Accepts `aud` as a string or an array of strings that contains one of `expected`, compared
/// exactly and case-sensitively. Missing, null, empty, numeric and nested values fail.
fn check_audience(value: Option<&Field<'_>>, expected: &[String]) -> Result<(), VerifyError> {
    let matches = |audience: &str| expected.iter().any(|wanted| wanted == audience);
    let accepted = match value {
        Some(Field::String(audience)) => matches(audience),
        Some(Field::Strings(items)) => items.iter().any(|audience| matches(audience)),
        _ => false,
    };
    if accepted {
        Ok(())
    } else {
        Err(VerifyError::WrongAudience {
            expected: expected.to_vec(),
        })
    }
}

fn optional_string<'a>(
    value: Option<&'a Field<'_>>,
    claim: &'static str,
) -> Result<Option<&'a str>, VerifyError> {
    match value {
        None => Ok(None),
        Some(Field::String(text)) => Ok(Some(text)),
        Some(_) => Err(VerifyError::InvalidClaim {
            claim,
            problem: "is not a string",
        }),
    }
}

/// Reads scopes from a space-separated string (RFC 8693 `scope`) or an array of strings (the
/// `scp` form some issuers use). Empty entries from repeated spaces are dropped.
fn scope_list<'a>(claim: &'static str, value: &'a Field<'_>) -> Result<Vec<&'a str>, VerifyError> {
    match value {
        Field::String(text) => Ok(text.split(' ').filter(|scope| !scope.is_empty()).collect()),
        Field::Strings(items) => Ok(items.iter().map(|item| &**item).collect()),
        _ => Err(VerifyError::InvalidClaim {
            claim,
            problem: "is neither a space-separated string nor an array of strings",
        }),
    }
}
