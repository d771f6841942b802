//! Refresh tokens: opaque random values, stored only as SHA-256 digests, rotated on every
//! use, with reuse detection.
//!
//! Each password grant starts a family. Redeeming a token marks it used and issues the
//! next token of the family. A used token presented again has leaked, so the whole family
//! is revoked. The OAuth 2.0 Security Best Current Practice (RFC 9700) recommends this
//! rotation with reuse detection. The store lives in memory only: a restart forgets
//! every refresh token, and clients then fall back to the password grant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Random bytes per refresh token: 256 bits, beyond any guessing attack.
const TOKEN_BYTES: usize = 32;

/// Interval between sweeps of expired tokens, in seconds. Sweeping walks every entry, so
/// it runs at most this often, on issue.
const SWEEP_INTERVAL_SECS: u64 = 60;

type TokenDigest = [u8; 32];

/// Client, user, scopes and audiences bound to a refresh token. Every token of a family
/// carries the same grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RefreshGrant {
    pub client_id: String,
    pub username: String,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
}

/// Reason a refresh token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedeemError {
    /// Never issued, revoked, or forgotten after a restart or sweep.
    Unknown,
    Expired,
    /// Issued to another client; the token stays valid for its own client.
    OtherClient,
    /// Already used; its family is now revoked.
    Reused,
}

/// The in-memory refresh token store.
#[derive(Debug)]
pub(crate) struct RefreshTokenStore {
    lifetime_secs: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: HashMap<TokenDigest, Entry>,
    families: HashMap<u64, Vec<TokenDigest>>,
    next_family: u64,
    last_sweep: u64,
}

#[derive(Debug)]
struct Entry {
    family: u64,
    grant: Arc<RefreshGrant>,
    expires_at: u64,
    used: bool,
}

impl RefreshTokenStore {
    /// Creates an empty store whose tokens live `lifetime_secs` seconds each.
    pub(crate) fn new(lifetime_secs: u64) -> RefreshTokenStore {
        RefreshTokenStore {
            lifetime_secs,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Issues the first token of a new family at time `now` (Unix seconds).
    pub(crate) fn issue(&self, grant: RefreshGrant, now: u64) -> Zeroizing<String> {
        let mut inner = self.lock();
        inner.sweep(now);
        let family = inner.next_family;
        inner.next_family += 1;
        inner.insert(
            family,
            Arc::new(grant),
            now.saturating_add(self.lifetime_secs),
        )
    }

    /// Starts redeeming `token` for `client_id` at time `now` (Unix seconds). The returned
    /// [`Redemption`] holds the store's lock: inspect the grant, then call
    /// [`Redemption::complete`] to rotate the token, or drop it to leave the token unused.
    ///
    /// # Errors
    ///
    /// A [`RedeemError`] saying why the token is not accepted. A reused token also revokes
    /// every token of its family.
    pub(crate) fn begin_redeem(
        &self,
        token: &str,
        client_id: &str,
        now: u64,
    ) -> Result<Redemption<'_>, RedeemError> {
        let digest = digest(token);
        let mut inner = self.lock();
        let entry = inner.tokens.get(&digest).ok_or(RedeemError::Unknown)?;

        let same_client: bool = Sha256::digest(entry.grant.client_id.as_bytes())
            .ct_eq(&Sha256::digest(client_id.as_bytes()))
            .into();
        if !same_client {
            return Err(RedeemError::OtherClient);
        }
        if entry.expires_at <= now {
            return Err(RedeemError::Expired);
        }
        if entry.used {
            let family = entry.family;
            inner.revoke(family);
            return Err(RedeemError::Reused);
        }
        let family = entry.family;
        let grant = Arc::clone(&entry.grant);
        Ok(Redemption {
            inner,
            digest,
            family,
            grant,
            expires_at: now.saturating_add(self.lifetime_secs),
        })
    }

    /// Returns the number of stored tokens, used and unused.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().tokens.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // No code path panics while holding the lock, and the map stays consistent anyway.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A refresh token being redeemed; see [`RefreshTokenStore::begin_redeem`].
pub(crate) struct Redemption<'a> {
    inner: std::sync::MutexGuard<'a, Inner>,
    digest: TokenDigest,
    family: u64,
    grant: Arc<RefreshGrant>,
    expires_at: u64,
}

impl Redemption<'_> {
    /// Returns what the token grants.
    pub(crate) fn grant(&self) -> &Arc<RefreshGrant> {
        &self.grant
    }

    /// Marks the token used and returns the next token of its family, which lives a full
    /// lifetime from the redemption time.
    pub(crate) fn complete(mut self) -> Zeroizing<String> {
        // The lock was held since the token was found, so the entry is still stored.
        if let Some(entry) = self.inner.tokens.get_mut(&self.digest) {
            entry.used = true;
        }
        let grant = Arc::clone(&self.grant);
        self.inner.insert(self.family, grant, self.expires_at)
    }
}

impl Inner {
    fn insert(
        &mut self,
        family: u64,
        grant: Arc<RefreshGrant>,
        expires_at: u64,
    ) -> Zeroizing<String> {
        let mut random = Zeroizing::new([0u8; TOKEN_BYTES]);
        OsRng.fill_bytes(random.as_mut());
        let token = Zeroizing::new(URL_SAFE_NO_PAD.encode(random.as_ref()));
        let digest = digest(&token);
        self.tokens.insert(
            digest,
            Entry {
                family,
                grant,
                expires_at,
                used: false,
            },
        );
        self.families.entry(family).or_default().push(digest);
        token
    }

    fn revoke(&mut self, family: u64) {
        for digest in self.families.remove(&family).unwrap_or_default() {
            self.tokens.remove(&digest);
        }
    }

    /// Drops expired tokens. A used token is kept until it expires, so that its reuse is
    /// still detected.
    fn sweep(&mut self, now: u64) {
        if now < self.last_sweep.saturating_add(SWEEP_INTERVAL_SECS) {
            return;
        }
        self.last_sweep = now;
        self.tokens.retain(|_, entry| entry.expires_at > now);
        let tokens = &self.tokens;
        self.families.retain(|_, digests| {
            digests.retain(|digest| tokens.contains_key(digest));
            !digests.is_empty()
        });
    }
}

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests;
