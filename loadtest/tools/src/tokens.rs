//! Token sets for the benchmark: one valid token for the repeated-token scenarios, many
//! distinct valid tokens for the cache-miss scenario, and expired and forged tokens that
//! every contender must reject.

use std::num::NonZeroUsize;
use std::thread;

use serde::Serialize;

use crate::keys::{KeyError, SigningKey};

/// How far in the past an expired token's `exp` lies. It must exceed every contender's clock
/// skew allowance (60 seconds for Portcullis and Envoy by default) by a wide margin.
pub const EXPIRED_AGO_SECS: i64 = 3600;

/// The claims every token carries, shaped like the demo STS's access tokens.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub issuer: String,
    pub audience: String,
    pub client_id: String,
    /// Space-separated, as in the `scope` claim.
    pub scope: String,
    /// Lifetime of valid tokens in seconds, counted from `now`.
    pub lifetime_secs: i64,
    /// The issue time, in seconds since the Unix epoch.
    pub now: i64,
    /// The header `typ`: `at+jwt` for RFC 9068 access tokens, as the demo STS issues.
    pub typ: String,
    /// Makes `jti` values unique across runs, so no contender can reuse a cached result.
    pub run_id: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    client_id: &'a str,
    scope: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Whether a batch of tokens is still valid or already expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Valid,
    Expired,
}

/// Signs `count` distinct tokens with `key`, numbered from `first`, spread over every core.
/// Each token has its own `sub` (`user-N`) and `jti`, so no two share a signature.
pub fn sign_batch(
    key: &SigningKey,
    spec: &TokenSpec,
    validity: Validity,
    first: usize,
    count: usize,
) -> Result<Vec<String>, KeyError> {
    let workers = thread::available_parallelism()
        .map(NonZeroUsize::get)
        .unwrap_or(1);
    let chunk = count.div_ceil(workers).max(1);
    let ranges: Vec<(usize, usize)> = (0..count)
        .step_by(chunk)
        .map(|start| (first + start, (count - start).min(chunk)))
        .collect();

    thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|&(start, len)| {
                scope.spawn(move || {
                    (start..start + len)
                        .map(|index| sign_one(key, spec, validity, index))
                        .collect::<Result<Vec<String>, KeyError>>()
                })
            })
            .collect();
        let mut tokens = Vec::with_capacity(count);
        for handle in handles {
            // A signing thread only returns values; a panic there is a bug worth surfacing.
            let batch = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            tokens.extend(batch);
        }
        Ok(tokens)
    })
}

fn sign_one(
    key: &SigningKey,
    spec: &TokenSpec,
    validity: Validity,
    index: usize,
) -> Result<String, KeyError> {
    let (iat, exp) = match validity {
        Validity::Valid => (spec.now, spec.now + spec.lifetime_secs),
        Validity::Expired => (
            spec.now - EXPIRED_AGO_SECS - spec.lifetime_secs,
            spec.now - EXPIRED_AGO_SECS,
        ),
    };
    let claims = Claims {
        iss: &spec.issuer,
        sub: format!("user-{index}"),
        aud: &spec.audience,
        client_id: &spec.client_id,
        scope: &spec.scope,
        iat,
        exp,
        jti: format!("{}-{index}", spec.run_id),
    };
    key.sign(&claims, &spec.typ)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;
    use crate::keys::SigningAlgorithm;

    fn spec() -> TokenSpec {
        TokenSpec {
            issuer: "https://issuer.test".into(),
            audience: "orders".into(),
            client_id: "applicationid".into(),
            scope: "foo bar".into(),
            lifetime_secs: 600,
            now: 1_700_000_000,
            typ: "at+jwt".into(),
            run_id: "run".into(),
        }
    }

    fn payload(token: &str) -> serde_json::Value {
        let segment = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
    }

    #[test]
    fn batch_tokens_are_distinct() {
        let key = SigningKey::generate(SigningAlgorithm::Es256, "k1").unwrap();
        let tokens = sign_batch(&key, &spec(), Validity::Valid, 10, 25).unwrap();
        assert_eq!(tokens.len(), 25);
        assert_eq!(tokens.iter().collect::<HashSet<_>>().len(), 25);
        assert_eq!(payload(&tokens[0])["sub"], "user-10");
        assert_eq!(payload(&tokens[24])["sub"], "user-34");
    }

    #[test]
    fn expired_tokens_are_past_leeway() {
        let key = SigningKey::generate(SigningAlgorithm::EdDsa, "k1").unwrap();
        let tokens = sign_batch(&key, &spec(), Validity::Expired, 0, 1).unwrap();
        let exp = payload(&tokens[0])["exp"].as_i64().unwrap();
        assert_eq!(exp, 1_700_000_000 - EXPIRED_AGO_SECS);
    }
}
