//! A table of named secrets (clients or users) with constant-time lookup and verification.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use tokio::sync::Semaphore;
use tokio::task::JoinError;
use zeroize::Zeroizing;

use super::{dummy_hash_like, verify_secret};
use crate::error::StsError;

/// Bounds how many Argon2 verifications run at once. Each one holds its memory cost (19 MiB
/// with the default parameters) on a blocking thread, so a burst of token requests could
/// otherwise exhaust memory.
#[derive(Debug, Clone)]
pub(crate) struct HashingLimit {
    permits: Arc<Semaphore>,
}

impl HashingLimit {
    /// Allows one verification per available CPU, because more cannot run in parallel.
    pub(crate) fn per_cpu() -> HashingLimit {
        let cpus = std::thread::available_parallelism().map_or(1, |count| count.get());
        HashingLimit {
            permits: Arc::new(Semaphore::new(cpus)),
        }
    }
}

/// Entries with a name and a secret hash.
///
/// [`CredentialTable::authenticate`] compares the requested name with every entry's name
/// through SHA-256 digests in constant time. It runs one Argon2 verification whether the
/// name exists or not, because an unknown name is verified against a dummy hash with the
/// parameters of the first entry. Entries hashed with other parameters than the first one
/// take a different time to verify, so keep all hashes at the same parameters
/// (`hash-password` does).
#[derive(Debug)]
pub(crate) struct CredentialTable<T> {
    entries: Vec<Entry<T>>,
    dummy_hash: String,
}

#[derive(Debug)]
struct Entry<T> {
    name_digest: [u8; 32],
    secret_hash: String,
    value: Arc<T>,
}

impl<T: Send + Sync + 'static> CredentialTable<T> {
    /// Builds a table from values, reading each one's name and secret hash with the given
    /// functions.
    ///
    /// # Errors
    ///
    /// [`StsError::Hash`] when the dummy hash cannot be computed.
    pub(crate) fn new(
        values: Vec<T>,
        name: impl Fn(&T) -> &str,
        secret_hash: impl Fn(&T) -> &str,
    ) -> Result<CredentialTable<T>, StsError> {
        let dummy_hash = dummy_hash_like(values.first().map(&secret_hash))?;
        let entries = values
            .into_iter()
            .map(|value| Entry {
                name_digest: digest(name(&value)),
                secret_hash: secret_hash(&value).to_owned(),
                value: Arc::new(value),
            })
            .collect();
        Ok(CredentialTable {
            entries,
            dummy_hash,
        })
    }

    /// Finds the entry named `name` without branching on where, or whether, it matched.
    fn find_index(&self, name: &str) -> Option<usize> {
        let requested = digest(name);
        let mut found = u64::MAX;
        for (index, entry) in self.entries.iter().enumerate() {
            let matches = entry.name_digest.ct_eq(&requested);
            found.conditional_assign(&(index as u64), matches);
        }
        usize::try_from(found)
            .ok()
            .filter(|index| *index < self.entries.len())
    }

    /// Verifies `secret` for the entry named `name`, on the calling thread. Returns the entry
    /// when both match. Takes one Argon2 verification in every case.
    pub(crate) fn authenticate_blocking(&self, name: &str, secret: &str) -> Option<Arc<T>> {
        let index = self.find_index(name);
        let hash = match index {
            Some(index) => &self.entries[index].secret_hash,
            None => &self.dummy_hash,
        };
        let verified = verify_secret(secret, hash);
        match index {
            Some(index) if verified => Some(Arc::clone(&self.entries[index].value)),
            _ => None,
        }
    }

    /// Runs [`CredentialTable::authenticate_blocking`] on the blocking thread pool, at most
    /// as many at once as `limit` allows.
    ///
    /// # Errors
    ///
    /// The [`JoinError`] when the verification task panicked.
    pub(crate) async fn authenticate(
        self: &Arc<Self>,
        limit: &HashingLimit,
        name: &str,
        secret: Zeroizing<String>,
    ) -> Result<Option<Arc<T>>, JoinError> {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = limit.permits.acquire().await;
        let table = Arc::clone(self);
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || table.authenticate_blocking(&name, &secret)).await
    }
}

fn digest(name: &str) -> [u8; 32] {
    Sha256::digest(name.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::hash_secret;

    fn table() -> CredentialTable<(String, String)> {
        let entries = vec![
            (
                "applicationid".to_owned(),
                hash_secret("applicationsecret").unwrap(),
            ),
            ("other".to_owned(), hash_secret("othersecret").unwrap()),
        ];
        CredentialTable::new(entries, |entry| &entry.0, |entry| &entry.1).unwrap()
    }

    #[test]
    fn authenticate_accepts_matching_pair() {
        let table = table();
        let found = table.authenticate_blocking("other", "othersecret").unwrap();
        assert_eq!(found.0, "other");
    }

    #[test]
    fn authenticate_rejects_wrong_pairs() {
        let table = table();
        assert!(table
            .authenticate_blocking("other", "applicationsecret")
            .is_none());
        assert!(table.authenticate_blocking("applicationid", "").is_none());
        assert!(table
            .authenticate_blocking("unknown", "othersecret")
            .is_none());
        assert!(table.authenticate_blocking("", "").is_none());
    }

    #[test]
    fn find_matches_whole_names_only() {
        let table = table();
        assert_eq!(table.find_index("other"), Some(1));
        assert_eq!(table.find_index("applicationid"), Some(0));
        assert_eq!(table.find_index("application"), None);
        assert_eq!(table.find_index("applicationid "), None);
    }
}
