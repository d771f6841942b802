//! The verified-token cache: skips the signature check for a token seen recently.
//!
//! Entries are keyed by the SHA-256 of the token's signing input (`header.payload`), which a
//! cache miss hands on to the signature check, so the bytes the signature covers are hashed
//! once. An entry also keeps a keyed 64-bit hash of the signature text it was verified with,
//! and a token with the same signing input but another signature misses and is verified in
//! full. The token text is never stored. An entry is used only while verification itself
//! would still accept the token (`now < exp + leeway`) and while the key that verified it is
//! still in the issuer's set.

use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use aws_lc_rs::digest::{self, Digest, SHA256};
use dashmap::DashMap;

use super::VerifiedToken;
use crate::keys::{KeyStore, ProviderId, VerificationKey};

/// The SHA-256 of a token's signing input, as the cache's map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InputHash([u8; 32]);

impl Hash for InputHash {
    /// Feeds the map only the first eight bytes: a SHA-256 output is already uniform, and
    /// entries exist only for tokens whose signature verified, so no one can fill a bucket.
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut word = [0; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

/// The hasher of the map, which passes on the word [`InputHash`] gives it.
#[derive(Default)]
struct InputHasher(u64);

impl Hasher for InputHasher {
    fn write(&mut self, bytes: &[u8]) {
        // An `InputHash` calls only `write_u64`, but other input is folded in as well.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The cache key of a token, computed once per request.
pub struct TokenKey {
    /// SHA-256 of the signing input, the text before the token's last `.`.
    pub digest: Digest,
    /// Length of that signing input, so the digest is used only for the same text.
    pub signing_input_len: usize,
    input: InputHash,
    signature_tag: u64,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey").finish_non_exhaustive()
    }
}

/// One verified token and what it depends on.
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
    /// Entries by signing input, each with the keyed hash of the signature that verified.
    entries: DashMap<InputHash, (u64, CacheEntry), BuildHasherDefault<InputHasher>>,
    /// The key of the signature hash, random for each cache.
    signature_hasher: ahash::RandomState,
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
            entries: DashMap::default(),
            signature_hasher: ahash::RandomState::new(),
            count: AtomicUsize::new(0),
            max_entries,
            next_sweep: AtomicI64::new(i64::MIN),
        }
    }

    /// Hashes `token` for [`TokenCache::get`] and [`TokenCache::insert`]. A token without a
    /// `.` is hashed whole, and parsing rejects it later.
    pub fn key(&self, token: &str) -> TokenKey {
        let (signing_input, signature) = token.rsplit_once('.').unwrap_or((token, ""));
        let digest = digest::digest(&SHA256, signing_input.as_bytes());
        let mut input = [0; 32];
        // A SHA-256 digest is 32 bytes, and `copy_from_slice` panics only on another length.
        input.copy_from_slice(digest.as_ref());
        TokenKey {
            digest,
            signing_input_len: signing_input.len(),
            input: InputHash(input),
            signature_tag: self.signature_hasher.hash_one(signature),
        }
    }

    /// Returns the cached token if it is still usable at `now` with the issuer's current keys;
    /// removes the entry otherwise. An entry verified with another signature is left alone.
    pub fn get(&self, key: &TokenKey, now: i64, keys: &KeyStore) -> Option<Arc<VerifiedToken>> {
        let entry = {
            let found = self.entries.get(&key.input)?;
            let (tag, entry) = found.value();
            if *tag != key.signature_tag {
                return None;
            }
            entry.clone()
        };
        if now < entry.usable_until && key_still_current(&entry, keys) {
            return Some(entry.token);
        }
        if self.entries.remove(&key.input).is_some() {
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
    pub fn insert(&self, key: &TokenKey, entry: CacheEntry, now: i64) {
        if self.count.load(Ordering::Relaxed) >= self.max_entries {
            self.sweep(now);
            if self.count.load(Ordering::Relaxed) >= self.max_entries {
                return;
            }
        }
        if self
            .entries
            .insert(key.input, (key.signature_tag, entry))
            .is_none()
        {
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
        self.entries
            .retain(|_, (_, entry)| now < entry.usable_until);
        self.count.store(self.entries.len(), Ordering::Relaxed);
        let earliest = self
            .entries
            .iter()
            .map(|entry| entry.value().1.usable_until)
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
