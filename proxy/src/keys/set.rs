//! An immutable set of usable keys for one provider, indexed by `kid`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest::Digest;
use jsonwebtoken::Algorithm;

use super::public_key::ParsedKeys;

/// The signature algorithm family of a key. A token's `alg` must belong to the family of the
/// key that verifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// RS256/384/512 and PS256/384/512.
    Rsa,
    /// ES256.
    EcP256,
    /// ES384.
    EcP384,
    /// EdDSA with Ed25519.
    Ed25519,
}

impl KeyFamily {
    /// Returns the family whose keys can verify `algorithm`, or `None` for HMAC.
    pub fn of(algorithm: Algorithm) -> Option<KeyFamily> {
        match algorithm {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Some(KeyFamily::Rsa),
            Algorithm::ES256 => Some(KeyFamily::EcP256),
            Algorithm::ES384 => Some(KeyFamily::EcP384),
            Algorithm::EdDSA => Some(KeyFamily::Ed25519),
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => None,
        }
    }
}

impl fmt::Display for KeyFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            KeyFamily::Rsa => "RSA",
            KeyFamily::EcP256 => "EC P-256",
            KeyFamily::EcP384 => "EC P-384",
            KeyFamily::Ed25519 => "Ed25519",
        };
        f.write_str(name)
    }
}

/// One usable public key from a provider's JWKS.
#[derive(Clone)]
pub struct VerificationKey {
    /// The JWK's `kid`, if it has one.
    pub kid: Option<String>,
    pub family: KeyFamily,
    /// The JWK's `alg`, when it pins the key to one algorithm.
    pub algorithm: Option<Algorithm>,
    /// The key parsed for each algorithm it may verify: the pinned one, or else every
    /// algorithm of its family that the provider allows.
    pub(super) parsed: ParsedKeys,
    /// The public key as parsed (a DER `RSAPublicKey`, an uncompressed EC point or the raw
    /// Ed25519 bytes), used to tell whether a refresh changed the set.
    pub(crate) material: Vec<u8>,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerificationKey {
    /// Returns whether both are the same key: same `kid`, family, pinned algorithm and material.
    pub fn same_as(&self, other: &VerificationKey) -> bool {
        self.kid == other.kid
            && self.family == other.family
            && self.algorithm == other.algorithm
            && self.material == other.material
    }

    /// Returns whether this key may verify a token signed with `algorithm`: the key's family
    /// must fit, the provider must allow `algorithm`, and a pinned key accepts only its own.
    pub fn accepts(&self, algorithm: Algorithm) -> bool {
        self.parsed.get(algorithm).is_some()
    }

    /// Verifies `signature`, the decoded JWS signature, over `message` with `algorithm`.
    /// `sha256`, when given, must be the SHA-256 of `message`, and algorithms that sign a
    /// SHA-256 digest use it instead of hashing `message` again. Returns `false` for an invalid
    /// signature and for an algorithm the key does not accept.
    pub fn verify_signature(
        &self,
        algorithm: Algorithm,
        message: &[u8],
        sha256: Option<&Digest>,
        signature: &[u8],
    ) -> bool {
        let Some(key) = self.parsed.get(algorithm) else {
            return false;
        };
        match sha256 {
            Some(digest) if signs_sha256(algorithm) => {
                key.verify_digest_sig(digest, signature).is_ok()
            }
            _ => key.verify_sig(message, signature).is_ok(),
        }
    }
}

/// Returns whether `algorithm` signs the SHA-256 digest of the message (Ed25519 signs the
/// message itself).
fn signs_sha256(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256
    )
}

/// The usable keys of one provider, as loaded by one successful fetch.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Arc<[Arc<VerificationKey>]>,
    /// The keys of each `kid`, shared so that a lookup hands them out without a copy. Keyed
    /// with ahash, which hashes a short `kid` several times faster than the default SipHash
    /// and is still seeded at random, so a client cannot choose colliding kids.
    by_kid: HashMap<String, Arc<[Arc<VerificationKey>]>, ahash::RandomState>,
}

impl KeySet {
    /// Builds a set from parsed keys, in JWKS order.
    pub fn new(keys: Vec<VerificationKey>) -> KeySet {
        let keys: Arc<[Arc<VerificationKey>]> = keys.into_iter().map(Arc::new).collect();
        let mut grouped: HashMap<String, Vec<Arc<VerificationKey>>> = HashMap::new();
        for key in keys.iter() {
            if let Some(kid) = &key.kid {
                grouped
                    .entry(kid.clone())
                    .or_default()
                    .push(Arc::clone(key));
            }
        }
        let by_kid = grouped
            .into_iter()
            .map(|(kid, group)| (kid, Arc::from(group)))
            .collect();
        KeySet { keys, by_kid }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Returns the keys whose `kid` is exactly `kid`. Several keys may share a `kid` when
    /// they belong to different families.
    pub fn by_kid(&self, kid: &str) -> &[Arc<VerificationKey>] {
        self.by_kid
            .get(kid)
            .map(|group| &group[..])
            .unwrap_or_default()
    }

    /// Returns the keys whose `kid` is exactly `kid` as a shared list, or `None` if there are
    /// none.
    pub fn kid_group(&self, kid: &str) -> Option<Arc<[Arc<VerificationKey>]>> {
        self.by_kid.get(kid).cloned()
    }

    /// Returns the set's only key as a shared list of one, like [`KeySet::only_key`].
    pub fn only_key_group(&self) -> Option<Arc<[Arc<VerificationKey>]>> {
        (self.keys.len() == 1).then(|| Arc::clone(&self.keys))
    }

    /// Returns the only key of the set, for tokens without a `kid`. Returns `None` when the set
    /// contains several keys, because the choice would be a guess.
    pub fn only_key(&self) -> Option<&Arc<VerificationKey>> {
        match &self.keys[..] {
            [key] => Some(key),
            _ => None,
        }
    }

    /// Returns whether both sets contain the same keys with the same `kid`s, in any order.
    pub fn same_keys(&self, other: &KeySet) -> bool {
        let summary = |set: &KeySet| {
            let mut entries: Vec<_> = set
                .keys
                .iter()
                .map(|key| {
                    (
                        key.kid.clone(),
                        key.family.to_string(),
                        key.algorithm.map(|algorithm| format!("{algorithm:?}")),
                        key.material.clone(),
                    )
                })
                .collect();
            entries.sort();
            entries
        };
        summary(self) == summary(other)
    }
}
