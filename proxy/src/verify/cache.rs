//! The verified-token cache: skips the signature check for a token seen recently.
//!
//! Entries are keyed by the SHA-256 of the token, so the token text is never stored. An entry
//! is used only while verification itself would still accept the token (`now < exp + leeway`)
//! and while the key that verified it is still in the issuer's set.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use sha2::{Digest, Sha256};

use super::VerifiedToken;
use crate::keys::{KeyStore, ProviderId, VerificationKey};

/// SHA-256 of a token's text.
pub type TokenHash = [u8; 32];

/// Hashes a token for use as a cache key.
pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// One verified token and what it depends on.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub token: Arc<VerifiedToken>,
    pub provider: ProviderId,
    /// Whether the token named a `kid`, which then equals `key.kid` because keys are chosen by
    /// kid.
    pub had_kid: bool,
    /// The key that verified the signature, compared with the issuer's current set.
    pub key: Arc<VerificationKey>,
    /// Generation of the key set `key` came from; while it is current, `key` is too.
    pub generation: u64,
    /// First second (since the Unix epoch) at which verification would reject the token.
    pub usable_until: i64,
}

/// A bounded map of verified tokens.
///
/// When full, an insert first drops expired entries; if the map is still full, the new token
/// is not cached. Evicting live entries instead (LRU) would cost bookkeeping on every hit, and
/// a flood of distinct valid tokens would only churn the cache, so the choice here is to keep
/// the tokens already cached and verify the rest every time.
#[derive(Debug)]
pub struct TokenCache {
    entries: DashMap<TokenHash, CacheEntry>,
    /// The number of entries, kept because `DashMap::len` locks every shard. Concurrent
    /// inserts and sweeps may leave it a few entries off until the next sweep recounts.
    count: AtomicUsize,
    max_entries: usize,
    /// Earliest `usable_until` seen by the last sweep: before then, sweeping a full map cannot
    /// free anything, so it is skipped.
    next_sweep: AtomicI64,
}

impl TokenCache {
    /// Creates a cache of at most `max_entries` tokens.
    pub fn new(max_entries: usize) -> TokenCache {
        TokenCache {
            entries: DashMap::new(),
            count: AtomicUsize::new(0),
            max_entries,
            next_sweep: AtomicI64::new(i64::MIN),
        }
    }

    /// Returns the cached token if it is still usable at `now` with the issuer's current keys;
    /// removes the entry otherwise.
    pub fn get(&self, hash: &TokenHash, now: i64, keys: &KeyStore) -> Option<Arc<VerifiedToken>> {
        let entry = self.entries.get(hash)?.clone();
        if now < entry.usable_until && key_still_current(&entry, keys) {
            return Some(entry.token);
        }
        if self.entries.remove(hash).is_some() {
            // Saturating: a sweep on another thread may have just recounted without this entry.
            let _ = self
                .count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                    Some(count.saturating_sub(1))
                });
        }
        None
    }

    /// Caches a verified token, unless the cache is full of entries that are still usable.
    pub fn insert(&self, hash: TokenHash, entry: CacheEntry, now: i64) {
        if self.count.load(Ordering::Relaxed) >= self.max_entries {
            self.sweep(now);
            if self.count.load(Ordering::Relaxed) >= self.max_entries {
                return;
            }
        }
        if self.entries.insert(hash, entry).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns the kept count, which tests compare with [`TokenCache::len`].
    #[cfg(test)]
    pub fn counted(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn sweep(&self, now: i64) {
        if now < self.next_sweep.load(Ordering::Relaxed) {
            return;
        }
        self.entries.retain(|_, entry| now < entry.usable_until);
        self.count.store(self.entries.len(), Ordering::Relaxed);
        let earliest = self
            .entries
            .iter()
            .map(|entry| entry.usable_until)
            .min()
            .unwrap_or(i64::MIN);
        self.next_sweep.store(earliest, Ordering::Relaxed);
    }
}

/// Returns whether the token's `kid` still selects the key that verified it. After the set
/// changes (new generation), the entry stays valid only if a fresh lookup would pick the same
/// key: by `kid`, or as the only key of the set for a token without one.
fn key_still_current(entry: &CacheEntry, keys: &KeyStore) -> bool {
    let Some(loaded) = keys.current(entry.provider) else {
        return false;
    };
    if loaded.generation == entry.generation {
        return true;
    }
    match (entry.had_kid, entry.key.kid.as_deref()) {
        (true, Some(kid)) => loaded
            .set
            .by_kid(kid)
            .iter()
            .any(|key| key.same_as(&entry.key)),
        // Keys are chosen by kid, so an entry from a token with a kid has a key with that kid.
        // Should one lack it, the entry is treated as stale.
        (true, None) => false,
        (false, _) => loaded
            .set
            .only_key()
            .is_some_and(|key| key.same_as(&entry.key)),
    }
}
