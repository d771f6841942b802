//! Why a token was rejected: one variant per failed check, with a metric label and a
//! description safe to send to the client.

use crate::keys::KeyFamily;

/// Longest untrusted value (an `iss`, `kid` or `alg` from the token) quoted in a description.
const MAX_QUOTED_CHARS: usize = 64;

/// A rejected token. Every variant names the value that failed, and none contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The token is not a well-formed JWS in compact serialization.
    #[error("malformed token: {problem}")]
    Malformed { problem: String },
    /// The header `alg` is unknown, symmetric, `none`, or not allowed for the issuer.
    #[error("algorithm {algorithm:?} is not allowed")]
    AlgorithmNotAllowed { algorithm: String },
    /// The header `alg` does not fit the family of the key chosen by `kid`.
    #[error("algorithm {algorithm} does not fit the {family} key {kid:?}")]
    AlgorithmMismatch {
        algorithm: String,
        kid: Option<String>,
        family: KeyFamily,
    },
    /// The `iss` claim is missing, not a string, or names no configured provider.
    #[error("issuer {issuer:?} is not trusted")]
    WrongIssuer { issuer: Option<String> },
    /// The issuer has no key set yet, so the token may be valid but cannot be checked.
    #[error("the keys of issuer {issuer} are not loaded yet")]
    KeysUnavailable { issuer: String },
    /// No key of the issuer has the token's `kid`, even after a refetch.
    #[error("no key with kid {kid:?}")]
    UnknownKey { kid: String },
    /// The token has no `kid` and the issuer publishes several keys.
    #[error("the token has no kid and the issuer has {keys} keys")]
    KidRequired { keys: usize },
    #[error("the signature does not verify")]
    BadSignature,
    /// `exp`, in seconds since the Unix epoch, is past (beyond the leeway).
    #[error("the token expired at {}", format_utc(*expired_at))]
    Expired { expired_at: i64 },
    /// `nbf`, in seconds since the Unix epoch, is in the future (beyond the leeway).
    #[error("the token is not valid before {}", format_utc(*not_before))]
    NotYetValid { not_before: i64 },
    /// `aud` is missing, malformed, or contains none of the provider's audiences.
    #[error("the audience does not include {}", expected.join(" or "))]
    WrongAudience { expected: Vec<String> },
    /// The header `typ` is not the one the provider requires (`expected`, such as `at+jwt`).
    #[error("the token type {found:?} is not {expected}")]
    WrongType {
        found: Option<String>,
        expected: String,
    },
    /// `exp - iat` exceeds the provider's `max_token_lifetime_secs`.
    #[error("the token lifetime of {lifetime} seconds exceeds the maximum of {max} seconds")]
    LifetimeTooLong { lifetime: i64, max: u64 },
    /// A claim has the wrong JSON type or a required one is missing.
    #[error("claim {claim} {problem}")]
    InvalidClaim {
        claim: &'static str,
        problem: &'static str,
    },
}

impl VerifyError {
    pub(crate) fn malformed(problem: impl Into<String>) -> VerifyError {
        VerifyError::Malformed {
            problem: problem.into(),
        }
    }

    /// Returns a short label for logs and the `result` label of
    /// `portcullis_token_verifications_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Malformed { .. } => "malformed",
            VerifyError::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            VerifyError::AlgorithmMismatch { .. } => "algorithm_mismatch",
            VerifyError::WrongIssuer { .. } => "wrong_issuer",
            VerifyError::KeysUnavailable { .. } => "keys_unavailable",
            VerifyError::UnknownKey { .. } | VerifyError::KidRequired { .. } => "unknown_key",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::Expired { .. } => "expired",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::WrongAudience { .. } => "wrong_audience",
            VerifyError::WrongType { .. } => "wrong_type",
            VerifyError::LifetimeTooLong { .. } => "lifetime_too_long",
            VerifyError::InvalidClaim { .. } => "invalid_claim",
        }
    }

    /// Returns the text for the `error_description` of an RFC 6750 challenge, which never
    /// contains the token. Values copied from the token are cut to 64 characters and reduced
    /// to printable ASCII without quotes or backslashes, the characters RFC 6750 allows there.
    pub fn description(&self) -> String {
        match self {
            VerifyError::Malformed { problem } => format!("the token is malformed: {problem}"),
            VerifyError::AlgorithmNotAllowed { algorithm } => {
                format!("the algorithm {} is not allowed", quote(algorithm))
            }
            VerifyError::AlgorithmMismatch {
                algorithm, family, ..
            } => format!(
                "the algorithm {} does not fit the issuer's {family} key",
                quote(algorithm)
            ),
            VerifyError::WrongIssuer { issuer: None } => "the token has no issuer".to_owned(),
            VerifyError::WrongIssuer {
                issuer: Some(issuer),
            } => format!("the issuer {} is not trusted", quote(issuer)),
            VerifyError::KeysUnavailable { .. } => {
                "the issuer's signing keys are not loaded yet".to_owned()
            }
            VerifyError::UnknownKey { kid } => {
                format!("the issuer has no signing key with kid {}", quote(kid))
            }
            VerifyError::KidRequired { .. } => {
                "the token has no kid and the issuer has several signing keys".to_owned()
            }
            VerifyError::BadSignature => "the signature is invalid".to_owned(),
            VerifyError::WrongType {
                found: None,
                expected,
            } => format!("the token has no typ header; {expected} is required"),
            VerifyError::WrongType {
                found: Some(found),
                expected,
            } => format!("the token type {} is not {expected}", quote(found)),
            other => other.to_string(),
        }
    }
}

/// Makes an untrusted value safe to show: printable ASCII only, no `"` or `\`, and at most
/// [`MAX_QUOTED_CHARS`] characters, quoted with single quotes.
fn quote(value: &str) -> String {
    let mut safe: String = value
        .chars()
        .take(MAX_QUOTED_CHARS)
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' && c != '\'' => c,
            _ => '?',
        })
        .collect();
    if value.chars().count() > MAX_QUOTED_CHARS {
        safe.push_str("...");
    }
    format!("'{safe}'")
}

/// Formats seconds since the Unix epoch as an RFC 3339 UTC timestamp, such as
/// `2026-12-04T10:00:00Z`.
pub fn format_utc(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), using
/// 400-year eras of 146,097 days that start on March 1 so leap days fall at the end.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
