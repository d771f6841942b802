//! Signing keys per token issuer: fetching each provider's JWKS, keeping the last good set,
//! refreshing it in the background, and refetching once when a token names an unknown `kid`.
//!
//! A set is replaced only by a fetch that yields at least one usable key, so a failing or
//! empty refresh keeps the previous keys, while a successful one drops removed keys at once.
//! The previous keys are kept for at most `max_key_staleness` after the last successful
//! fetch. After that the provider has no keys until a fetch succeeds again (fail closed).

mod backoff;
mod discovery;
mod fetch;
mod jwk;
mod public_key;
mod set;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use tokio::time::Instant;

use crate::config::ProviderConfig;
use crate::metrics::Metrics;
use crate::tls::TlsError;
use backoff::Backoff;
use fetch::{Fetcher, FileStamp};

/// How often a JWKS file is checked for changes. One metadata read per second costs
/// nothing, and a rotated key file takes effect within about a second.
const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Longest `kid` quoted in a log line; a token's `kid` is untrusted and may be huge.
const MAX_LOGGED_KID_CHARS: usize = 64;

pub use discovery::parse_discovery;
pub use fetch::{FetchError, FetchProblem, MAX_JWKS_BYTES};
pub use jwk::{parse_jwks, ParsedJwks, SkipReason, SkippedKey};
pub use set::{KeyFamily, KeySet, VerificationKey};

/// A failure to set up key fetching for a provider.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("provider {issuer}: cannot load ca_file for the JWKS fetch: {source}")]
    Tls { issuer: String, source: TlsError },
    #[error("provider {issuer}: no system CA certificates found for the HTTPS JWKS URI ({detail}); set ca_file for this provider")]
    NoSystemRoots { issuer: String, detail: String },
    #[error("provider {issuer}: cannot build the TLS client for the JWKS fetch: {source}")]
    TlsVersions {
        issuer: String,
        source: rustls::Error,
    },
}

/// Identifies a provider inside a [`KeyStore`]: its position in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProviderId(usize);

/// A provider's current key set and its generation. The generation changes whenever a fetch
/// changes the keys, so a cached verification made with an older generation is stale.
#[derive(Debug)]
pub struct LoadedKeys {
    pub set: KeySet,
    pub generation: u64,
}

/// The reason no key was found for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookupError {
    /// The provider has no usable key set: the first fetch has not succeeded, or every
    /// refresh has failed for longer than `max_key_staleness`.
    NotLoaded,
    /// No key has this `kid`, even after a refetch (or a refetch was not allowed yet).
    UnknownKid(String),
    /// The token has no `kid` and the set contains this many keys, so none can be chosen.
    KidRequired(usize),
}

/// The keys a token may be verified with, and the generation of the set they came from.
#[derive(Debug)]
pub struct KeyMatch {
    pub candidates: Arc<[Arc<VerificationKey>]>,
    pub generation: u64,
}

/// The key sets of every configured provider.
pub struct KeyStore {
    providers: Vec<ProviderKeys>,
    by_issuer: HashMap<String, ProviderId>,
    next_generation: AtomicU64,
    metrics: Metrics,
}

struct ProviderKeys {
    issuer: String,
    algorithms: Vec<Algorithm>,
    refresh_interval: Duration,
    unknown_kid_cooldown: Duration,
    max_key_staleness: Duration,
    fetcher: Fetcher,
    /// `None` until the first fetch with a usable key succeeds.
    current: RwLock<Option<CurrentKeys>>,
    /// Set once the staleness of the current keys has been logged, so a long outage logs
    /// one error instead of one per retry.
    stale_reported: AtomicBool,
    /// Counts finished fetches, successful or not, so a request that waited for a refetch
    /// can tell that one happened while it waited.
    finished_fetches: AtomicU64,
    /// Start of the last refetch caused by an unknown `kid`. Holding the lock during that
    /// refetch makes concurrent requests for unknown kids share it.
    last_unknown_kid_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// The last good key set and when a fetch last confirmed it.
struct CurrentKeys {
    loaded: Arc<LoadedKeys>,
    confirmed_at: Instant,
}

impl ProviderKeys {
    /// Returns the key set, unless no fetch has confirmed it for `max_key_staleness`.
    fn current(&self) -> Option<Arc<LoadedKeys>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        let current = current.as_ref()?;
        if current.confirmed_at.elapsed() > self.max_key_staleness {
            return None;
        }
        Some(Arc::clone(&current.loaded))
    }

    /// Returns whether a set was loaded once but has gone stale.
    fn is_stale(&self) -> bool {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .is_some_and(|current| current.confirmed_at.elapsed() > self.max_key_staleness)
    }
}

impl KeyStore {
    /// Prepares one fetcher per provider. Fails when a provider's TLS trust cannot be set up.
    /// Nothing is fetched until [`KeyStore::spawn`].
    pub fn new(providers: &[ProviderConfig], metrics: Metrics) -> Result<Arc<KeyStore>, KeyError> {
        let mut entries = Vec::with_capacity(providers.len());
        let mut by_issuer = HashMap::new();
        for (index, provider) in providers.iter().enumerate() {
            entries.push(ProviderKeys {
                issuer: provider.issuer.clone(),
                algorithms: provider.algorithms.clone(),
                refresh_interval: provider.refresh_interval,
                unknown_kid_cooldown: provider.unknown_kid_cooldown,
                max_key_staleness: provider.max_key_staleness,
                fetcher: Fetcher::new(provider)?,
                current: RwLock::new(None),
                stale_reported: AtomicBool::new(false),
                finished_fetches: AtomicU64::new(0),
                last_unknown_kid_fetch: tokio::sync::Mutex::new(None),
            });
            by_issuer.insert(provider.issuer.clone(), ProviderId(index));
            metrics
                .keys_loaded
                .with_label_values(&[provider.issuer.as_str()])
                .set(0);
        }
        Ok(Arc::new(KeyStore {
            providers: entries,
            by_issuer,
            next_generation: AtomicU64::new(1),
            metrics,
        }))
    }

    /// Starts the background task: first fetch with backoff until it succeeds, then refresh
    /// every `refresh_interval`, and at once when a JWKS file changes. Runs until the handle
    /// is aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let loops = (0..store.providers.len()).map(|index| store.keep_fresh(ProviderId(index)));
            futures_util::future::join_all(loops).await;
        })
    }

    /// True while every provider has a usable key set that is not stale.
    pub fn is_ready(&self) -> bool {
        self.providers
            .iter()
            .all(|provider| provider.current().is_some())
    }

    /// Returns the provider whose issuer is exactly `issuer`.
    pub fn provider(&self, issuer: &str) -> Option<ProviderId> {
        self.by_issuer.get(issuer).copied()
    }

    /// Returns the provider's current key set, if one was loaded.
    pub fn current(&self, id: ProviderId) -> Option<Arc<LoadedKeys>> {
        self.providers[id.0].current()
    }

    /// Finds the keys for a token's `kid`.
    ///
    /// A `kid` missing from the set triggers one refetch, shared by every request that waits
    /// for it, at most once per `unknown_kid_cooldown`. Within the cooldown the lookup fails at
    /// once. Without a `kid`, the set must contain exactly one key.
    pub async fn find_key(
        &self,
        id: ProviderId,
        kid: Option<&str>,
    ) -> Result<KeyMatch, KeyLookupError> {
        let provider = &self.providers[id.0];
        // Read before the lookup: if a fetch finishes after this point, the count differs.
        let fetches_seen = provider.finished_fetches.load(Ordering::Acquire);
        let loaded = provider.current().ok_or(KeyLookupError::NotLoaded)?;
        let Some(kid) = kid else {
            return match loaded.set.only_key_group() {
                Some(candidates) => Ok(KeyMatch {
                    candidates,
                    generation: loaded.generation,
                }),
                None => Err(KeyLookupError::KidRequired(loaded.set.len())),
            };
        };
        if let Some(found) = lookup_kid(&loaded, kid) {
            return Ok(found);
        }

        let mut last_fetch = provider.last_unknown_kid_fetch.lock().await;
        let fetched_meanwhile = provider.finished_fetches.load(Ordering::Acquire) != fetches_seen;
        let in_cooldown =
            last_fetch.is_some_and(|started| started.elapsed() < provider.unknown_kid_cooldown);
        if !fetched_meanwhile {
            if in_cooldown {
                return Err(KeyLookupError::UnknownKid(kid.to_owned()));
            }
            *last_fetch = Some(Instant::now());
            tracing::info!(
                issuer = %provider.issuer,
                kid = %loggable_kid(kid),
                "refetching the JWKS for an unknown kid"
            );
            // NOTE: a failed refetch is logged and counted by refresh, and the lookup below then
            // reports the kid as unknown (401), although the token might verify once the issuer
            // is reachable again.
            let _ = self.refresh(id, false).await;
        }
        drop(last_fetch);

        provider
            .current()
            .and_then(|loaded| lookup_kid(&loaded, kid))
            .ok_or_else(|| KeyLookupError::UnknownKid(kid.to_owned()))
    }

    /// Fetches every provider's set once, in order, and returns the first error. For tests
    /// and tools that need keys without the background task.
    pub async fn refresh_all(&self) -> Result<(), FetchError> {
        for index in 0..self.providers.len() {
            self.refresh(ProviderId(index), true).await?;
        }
        Ok(())
    }

    /// Fetches and installs one provider's set. Logs and counts the result. `rediscover`
    /// reads the discovery document again for a provider that uses discovery.
    async fn refresh(&self, id: ProviderId, rediscover: bool) -> Result<(), FetchError> {
        let provider = &self.providers[id.0];
        let issuer = provider.issuer.as_str();
        let result = match self.fetch_set(provider, rediscover).await {
            Ok(set) => {
                let location = provider.fetcher.location();
                let count = set.len();
                let changed = self.install(provider, set);
                provider.stale_reported.store(false, Ordering::Relaxed);
                self.metrics
                    .keys_loaded
                    .with_label_values(&[issuer])
                    .set(i64::try_from(count).unwrap_or(i64::MAX));
                self.metrics
                    .jwks_fetches
                    .with_label_values(&[issuer, "ok"])
                    .inc();
                if changed {
                    tracing::info!(issuer, jwks = %location, keys = count, "loaded a new JWKS");
                } else {
                    tracing::debug!(issuer, jwks = %location, keys = count, "JWKS unchanged");
                }
                Ok(())
            }
            Err(err) => {
                self.metrics
                    .jwks_fetches
                    .with_label_values(&[issuer, "error"])
                    .inc();
                if !provider.is_stale() {
                    tracing::warn!(issuer, error = %err, "JWKS fetch failed, keeping the previous keys");
                } else if !provider.stale_reported.swap(true, Ordering::Relaxed) {
                    self.metrics.keys_loaded.with_label_values(&[issuer]).set(0);
                    tracing::error!(
                        issuer,
                        error = %err,
                        max_key_staleness = ?provider.max_key_staleness,
                        "no JWKS fetch succeeded within max_key_staleness; rejecting this issuer's tokens until one does"
                    );
                } else {
                    tracing::warn!(issuer, error = %err, "JWKS fetch failed; the keys stay unusable");
                }
                Err(err)
            }
        };
        provider.finished_fetches.fetch_add(1, Ordering::AcqRel);
        result
    }

    async fn fetch_set(
        &self,
        provider: &ProviderKeys,
        rediscover: bool,
    ) -> Result<KeySet, FetchError> {
        let document = provider.fetcher.fetch(rediscover).await?;
        let parsed = parse_jwks(&document, &provider.algorithms).map_err(|message| {
            provider
                .fetcher
                .error(FetchProblem::InvalidDocument(message))
        })?;
        for skipped in &parsed.skipped {
            tracing::warn!(
                issuer = %provider.issuer,
                kid = skipped.kid.as_deref().unwrap_or("<none>"),
                reason = %skipped.reason,
                "skipping an unusable JWK"
            );
        }
        if parsed.keys.is_empty() {
            return Err(provider.fetcher.error(FetchProblem::NoUsableKeys {
                skipped: parsed.skipped.len(),
            }));
        }
        Ok(KeySet::new(parsed.keys))
    }

    /// Replaces the provider's set, marks it confirmed now, and returns whether the keys
    /// changed. An unchanged set keeps its generation, so cached verifications stay valid
    /// across routine refreshes.
    fn install(&self, provider: &ProviderKeys, set: KeySet) -> bool {
        let mut current = provider
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let confirmed_at = Instant::now();
        if let Some(current) = current.as_mut() {
            if current.loaded.set.same_keys(&set) {
                current.confirmed_at = confirmed_at;
                return false;
            }
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        *current = Some(CurrentKeys {
            loaded: Arc::new(LoadedKeys { set, generation }),
            confirmed_at,
        });
        true
    }

    /// Fetches until the first success, then every `refresh_interval`. A failure keeps the
    /// last good set (up to `max_key_staleness`) and retries with backoff. A JWKS file is
    /// also read again as soon as it changes.
    async fn keep_fresh(&self, id: ProviderId) {
        let provider = &self.providers[id.0];
        let mut backoff = Backoff::new();
        loop {
            let stamp = provider.fetcher.file_stamp();
            let delay = match self.refresh(id, true).await {
                Ok(()) => {
                    backoff.reset();
                    provider.refresh_interval
                }
                Err(_) => backoff.next_delay(),
            };
            wait_for_next_fetch(provider, delay, stamp).await;
        }
    }
}

/// Sleeps for `delay`, or less when the provider's JWKS file no longer matches `stamp`.
async fn wait_for_next_fetch(provider: &ProviderKeys, delay: Duration, stamp: Option<FileStamp>) {
    if stamp.is_none() {
        tokio::time::sleep(delay).await;
        return;
    }
    let deadline = Instant::now() + delay;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        tokio::time::sleep(FILE_POLL_INTERVAL.min(deadline - now)).await;
        if provider.fetcher.file_stamp() != stamp {
            return;
        }
    }
}

/// Cuts an untrusted `kid` to [`MAX_LOGGED_KID_CHARS`] printable ASCII characters, so a
/// hostile value cannot flood or forge log lines.
fn loggable_kid(kid: &str) -> String {
    let mut text: String = kid
        .chars()
        .take(MAX_LOGGED_KID_CHARS)
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect();
    if kid.chars().count() > MAX_LOGGED_KID_CHARS {
        text.push_str("...");
    }
    text
}

fn lookup_kid(loaded: &LoadedKeys, kid: &str) -> Option<KeyMatch> {
    Some(KeyMatch {
        candidates: loaded.set.kid_group(kid)?,
        generation: loaded.generation,
    })
}
