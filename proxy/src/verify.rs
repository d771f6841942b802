//! Token verification: strict JWS parsing, the signature check against the issuer's JWKS,
//! claim checks, and a cache of verified tokens.
//!
//! Parsing and every check are done here, not by a JWT library's all-in-one decode, which
//! would apply its own policy (header parsing, claim defaults). Only the signature primitive
//! comes from a library: aws-lc-rs's `ParsedPublicKey::verify_sig`, with keys parsed once
//! when the key set is loaded (see [`VerificationKey::verify_signature`]).

mod base64url;
mod cache;
mod claims;
mod error;
mod json;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::IntCounter;

use crate::config::{normalize_typ, CacheConfig, Config, ProviderConfig};
use crate::identity::StandardValues;
use crate::keys::{KeyLookupError, KeyStore, ProviderId, VerificationKey};
use crate::metrics::Metrics;
use cache::{CacheEntry, TokenCache, TokenKey};

pub use error::{format_utc, VerifyError};
pub use json::Field;
pub use token::{parse as parse_token, Claims, UnverifiedToken, MAX_TOKEN_BYTES};

/// The checked contents of a token the sidecar accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// The `iss` claim, equal to the issuer of the provider that verified the token.
    pub issuer: Arc<str>,
    /// `sub`, `client_id` and the scopes, read through [`VerifiedToken::subject`],
    /// [`VerifiedToken::client_id`] and [`VerifiedToken::scopes`].
    pub(crate) identity: IdentityText,
    /// The payload's JSON text. A cached token keeps this instead of the parsed claims, which
    /// would cost several times the memory; [`VerifiedToken::claims`] parses it on first use.
    pub(crate) claims_json: Box<[u8]>,
    pub(crate) claims: OnceLock<serde_json::Map<String, serde_json::Value>>,
    /// The `exp` claim, in seconds since the Unix epoch (0 for a negative `exp`).
    pub expires_at: u64,
    /// The standard identity headers for this token, rendered by [`crate::identity`] on first
    /// use. The cache hands the same `VerifiedToken` to every request with the token, so the
    /// values are built once per token rather than once per request.
    pub identity_headers: OnceLock<StandardValues>,
}

impl VerifiedToken {
    /// Returns the `sub` claim.
    pub fn subject(&self) -> Option<&str> {
        self.identity.subject()
    }

    /// Returns the `client_id` claim.
    pub fn client_id(&self) -> Option<&str> {
        self.identity.client_id()
    }

    /// Returns the scopes: from `scope` (space-separated) or, when it is absent, `scp`.
    pub fn scopes(&self) -> impl Iterator<Item = &str> + Clone {
        self.identity.scopes()
    }

    /// Returns the whole payload, or `None` when the verifier was built not to keep it (see
    /// [`Verifier::keep_claims`]). Only routes with claim requirements and configured claim
    /// headers need it, so it is parsed from the kept JSON text on the first call.
    pub fn claims(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        // A kept payload is at least `{}`, so empty text means it was dropped.
        if self.claims_json.is_empty() {
            return None;
        }
        Some(self.claims.get_or_init(|| {
            // The same text passed the same strict parse during verification, so this cannot
            // fail. If it ever did, an empty map would hide claims and never invent any.
            json::parse_object(&self.claims_json).unwrap_or_default()
        }))
    }
}

/// The `sub`, `client_id` and scopes of a verified token in one allocation. The cache keeps
/// them for every token, and a miss that fills the cache pays for each allocation that stays.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct IdentityText {
    /// The subject, then the client id, then each scope followed by a NUL.
    text: Box<str>,
    /// The end of the subject in `text`, or `None` without a `sub` claim.
    subject_end: Option<u32>,
    /// The end of the client id in `text`, or `None` without a `client_id` claim.
    client_id_end: Option<u32>,
}

impl IdentityText {
    /// Builds the text. Empty scopes are dropped, and so are scopes that contain a NUL, which
    /// the scope syntax of RFC 6749 (section 3.3) does not allow.
    pub(crate) fn new<'a>(
        subject: Option<&str>,
        client_id: Option<&str>,
        scopes: impl Iterator<Item = &'a str> + Clone,
    ) -> IdentityText {
        let valid_scopes = scopes.filter(|scope| !scope.is_empty() && !scope.contains('\0'));
        let length = subject.map_or(0, str::len)
            + client_id.map_or(0, str::len)
            + valid_scopes
                .clone()
                .map(|scope| scope.len() + 1)
                .sum::<usize>();
        let mut text = String::with_capacity(length);
        // A token is at most MAX_TOKEN_BYTES (16 KiB), so every offset fits in a u32.
        let end_of = |part: Option<&str>, text: &mut String| {
            part.map(|part| {
                text.push_str(part);
                u32::try_from(text.len()).unwrap_or(u32::MAX)
            })
        };
        let subject_end = end_of(subject, &mut text);
        let client_id_end = end_of(client_id, &mut text);
        for scope in valid_scopes {
            text.push_str(scope);
            text.push('\0');
        }
        IdentityText {
            text: text.into_boxed_str(),
            subject_end,
            client_id_end,
        }
    }

    fn subject(&self) -> Option<&str> {
        self.text.get(..usize::try_from(self.subject_end?).ok()?)
    }

    fn client_id(&self) -> Option<&str> {
        let start = self.subject_end.unwrap_or(0);
        let end = self.client_id_end?;
        self.text
            .get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
    }

    fn scopes(&self) -> impl Iterator<Item = &str> + Clone {
        let start = self.client_id_end.or(self.subject_end).unwrap_or(0);
        let rest = usize::try_from(start)
            .ok()
            .and_then(|start| self.text.get(start..))
            .unwrap_or_default();
        rest.split_terminator('\0')
    }
}

/// The current time in whole seconds since the Unix epoch.
type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> i64 {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
}

/// Verifies bearer tokens against the configured providers.
pub struct Verifier {
    keys: Arc<KeyStore>,
    /// Each provider by issuer, with its place in `keys` and the issuer once more as shared
    /// text, which every token it verifies points to instead of holding a copy.
    /// Keyed with ahash, as [`crate::keys::KeySet`]'s kids are, because each miss looks up
    /// its issuer here.
    providers: HashMap<String, Provider, ahash::RandomState>,
    /// `None` when `cache.max_entries` is 0.
    cache: Option<TokenCache>,
    metrics: Metrics,
    /// The `valid` series of `portcullis_token_verifications_total`, looked up once because
    /// finding a labelled series hashes the label and takes a lock.
    valid: IntCounter,
    /// Whether verified tokens keep their payload text for [`VerifiedToken::claims`].
    keep_claims: bool,
    clock: Clock,
}

/// A configured provider as the verifier looks it up.
struct Provider {
    id: ProviderId,
    issuer: Arc<str>,
    config: ProviderConfig,
}

/// A token that passed every check, with the key that verified it.
struct Verified {
    token: VerifiedToken,
    provider: ProviderId,
    /// Whether the token named a `kid`.
    had_kid: bool,
    key: Arc<VerificationKey>,
    generation: u64,
    usable_until: i64,
}

impl Verifier {
    /// Creates a verifier over the providers' key sets. `providers` must be the list the
    /// [`KeyStore`] was built from.
    pub fn new(
        keys: Arc<KeyStore>,
        providers: &[ProviderConfig],
        cache: &CacheConfig,
        metrics: Metrics,
    ) -> Verifier {
        let providers = providers
            .iter()
            .filter_map(|config| {
                // The key store was built from the same list, so every issuer is in it. A
                // provider missing there is left out, and its tokens fail as from an unknown
                // issuer.
                let id = keys.provider(&config.issuer)?;
                let provider = Provider {
                    id,
                    issuer: Arc::from(config.issuer.as_str()),
                    config: config.clone(),
                };
                Some((config.issuer.clone(), provider))
            })
            .collect();
        Verifier {
            keys,
            providers,
            cache: (cache.max_entries > 0).then(|| TokenCache::new(cache.max_entries)),
            valid: metrics.verifications.with_label_values(&["valid"]),
            metrics,
            keep_claims: true,
            clock: Arc::new(system_clock),
        }
    }

    /// Creates the verifier the sidecar runs for `config`: it keeps the payload text of
    /// verified tokens only when a route's claim requirements or a claim header read it.
    /// `keys` must be built from `config.providers`.
    pub fn for_config(config: &Config, keys: Arc<KeyStore>, metrics: Metrics) -> Verifier {
        // Only claim requirements and claim headers read claims beyond the standard ones, so
        // a configuration without either lets cached tokens drop their payload text.
        let needs_claims = !config.claim_headers.is_empty()
            || config.routes.iter().any(|route| !route.claims.is_empty());
        Verifier::new(keys, &config.providers, &config.cache, metrics).keep_claims(needs_claims)
    }

    /// Sets whether verified tokens keep their payload text (the default). Without it,
    /// [`VerifiedToken::claims`] returns an empty map, so turn it off only when no route or
    /// header reads claims; a cached token of the benchmark is then about 190 bytes smaller.
    pub fn keep_claims(mut self, keep: bool) -> Self {
        self.keep_claims = keep;
        self
    }

    /// Replaces the clock, so tests can check time limits to the second.
    #[cfg(test)]
    pub(crate) fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Verifies `token` (the text after `Bearer `) and returns its checked claims. Counts the
    /// result in `portcullis_token_verifications_total`.
    pub async fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        let result = self.verify_uncounted(token).await;
        match &result {
            Ok(_) => self.valid.inc(),
            Err(err) => self
                .metrics
                .verifications
                .with_label_values(&[err.reason()])
                .inc(),
        }
        result
    }

    async fn verify_uncounted(&self, token: &str) -> Result<Arc<VerifiedToken>, VerifyError> {
        let now = (self.clock)();
        let Some(cache) = &self.cache else {
            return Ok(Arc::new(self.verify_fully(token, now, None).await?.token));
        };

        let key = cache.key(token);
        if let Some(cached) = cache.get(&key, now, &self.keys) {
            self.metrics.cache_hits.inc();
            return Ok(cached);
        }
        self.metrics.cache_misses.inc();

        let verified = self.verify_fully(token, now, Some(&key)).await?;
        let token = Arc::new(verified.token);
        let entry = CacheEntry {
            token: Arc::clone(&token),
            provider: verified.provider,
            had_kid: verified.had_kid,
            key: verified.key,
            generation: verified.generation,
            usable_until: verified.usable_until,
        };
        cache.insert(&key, entry, now);
        Ok(token)
    }

    /// Runs every check on `token` at time `now`. The signature check reuses the digest of
    /// the signing input in `cache_key` when the algorithm signs a SHA-256 digest.
    async fn verify_fully(
        &self,
        token: &str,
        now: i64,
        cache_key: Option<&TokenKey>,
    ) -> Result<Verified, VerifyError> {
        let unverified = token::parse(token)?;
        let claims = unverified.claims()?;

        // The payload is untrusted until the signature checks out. `iss` is read here only to
        // choose the provider, and is checked again with the other claims afterwards.
        let Some(issuer) = claims.iss.as_ref().and_then(json::Field::as_str) else {
            return Err(VerifyError::WrongIssuer { issuer: None });
        };
        let Some(Provider {
            id: provider_id,
            issuer: shared_issuer,
            config: provider,
        }) = self.providers.get(issuer)
        else {
            return Err(VerifyError::WrongIssuer {
                issuer: Some(issuer.to_owned()),
            });
        };
        let provider_id = *provider_id;

        let algorithm = unverified.algorithm;
        if !provider.algorithms.contains(&algorithm) {
            return Err(VerifyError::AlgorithmNotAllowed {
                algorithm: format!("{algorithm:?}"),
            });
        }
        if let Some(expected) = &provider.required_typ {
            check_type(unverified.typ(), expected)?;
        }

        let found = self
            .keys
            .find_key(provider_id, unverified.kid())
            .await
            .map_err(|err| match err {
                KeyLookupError::NotLoaded => VerifyError::KeysUnavailable {
                    issuer: provider.issuer.clone(),
                },
                KeyLookupError::UnknownKid(kid) => VerifyError::UnknownKey { kid },
                KeyLookupError::KidRequired(keys) => VerifyError::KidRequired { keys },
            })?;
        let Some(key) = found
            .candidates
            .iter()
            .find(|key| key.accepts(algorithm))
            .cloned()
        else {
            let kid = unverified.kid().map(str::to_owned);
            // find_key never returns an empty match; an empty one would mean an unknown kid.
            return Err(match found.candidates.first() {
                Some(first) => VerifyError::AlgorithmMismatch {
                    algorithm: format!("{algorithm:?}"),
                    kid,
                    family: first.family,
                },
                None => VerifyError::UnknownKey {
                    kid: kid.unwrap_or_default(),
                },
            });
        };

        // Both texts start the same token, so an equal length means the same signing input.
        let digest = cache_key
            .filter(|cache_key| cache_key.signing_input_len == unverified.signing_input.len())
            .map(|cache_key| &cache_key.digest);
        if !key.verify_signature(
            algorithm,
            unverified.signing_input.as_bytes(),
            digest,
            &unverified.signature,
        ) {
            return Err(VerifyError::BadSignature);
        }

        let leeway = i64::try_from(provider.leeway.as_secs()).unwrap_or(i64::MAX);
        let had_kid = unverified.kid().is_some();
        let mut token = claims::check(&claims, provider, Arc::clone(shared_issuer), now)?;
        if self.keep_claims {
            // The decoded payload is exactly its length, so this keeps its buffer without a copy.
            token.claims_json = unverified.payload_json.into_boxed_slice();
        }
        let expires_at = i64::try_from(token.expires_at).unwrap_or(i64::MAX);
        Ok(Verified {
            token,
            provider: provider_id,
            had_kid,
            key,
            generation: found.generation,
            usable_until: expires_at.saturating_add(leeway),
        })
    }
}

/// Checks the header `typ` against the provider's `expected` value, which is normalized as
/// [`normalize_typ`] does: case-insensitive, with an optional `application/` prefix.
fn check_type(typ: Option<&str>, expected: &str) -> Result<(), VerifyError> {
    if typ.and_then(normalize_typ).as_deref() == Some(expected) {
        return Ok(());
    }
    Err(VerifyError::WrongType {
        found: typ.map(str::to_owned),
        expected: expected.to_owned(),
    })
}

#[cfg(test)]
mod tests;
