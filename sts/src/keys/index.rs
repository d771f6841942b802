//! The key index, `<data_dir>/keys/index.json`: which key files exist, which one signs, and
//! when each retired one stopped signing.

use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::KeyError;
use crate::config::SigningAlgorithm;
use crate::files::{write_atomically, PRIVATE_FILE_MODE};

/// Version of the index format, so that a future format can be recognized.
const INDEX_VERSION: u32 = 1;

/// The parsed key index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyIndex {
    pub version: u32,
    /// Keys in creation order; the last one is the signing key.
    pub keys: Vec<KeyRecord>,
}

/// One key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyRecord {
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    /// File name inside the key directory.
    pub file: String,
    /// Creation time, in seconds since the Unix epoch.
    pub created_at: u64,
    /// Time the key stopped signing, in seconds since the Unix epoch; absent for the signing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

impl KeyIndex {
    pub(crate) fn empty() -> KeyIndex {
        KeyIndex {
            version: INDEX_VERSION,
            keys: Vec::new(),
        }
    }

    /// Reads and checks the index at `path`; `Ok(None)` when the file does not exist.
    ///
    /// # Errors
    ///
    /// [`KeyError::ReadIndex`], [`KeyError::ParseIndex`] or [`KeyError::InvalidIndex`].
    pub(crate) fn load(path: &Path) -> Result<Option<KeyIndex>, KeyError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::ReadIndex {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        KeyIndex::parse(&bytes, path).map(Some)
    }

    /// Parses and checks index JSON read from `path`.
    ///
    /// # Errors
    ///
    /// [`KeyError::ParseIndex`] or [`KeyError::InvalidIndex`].
    pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<KeyIndex, KeyError> {
        let index: KeyIndex =
            serde_json::from_slice(bytes).map_err(|source| KeyError::ParseIndex {
                path: path.to_path_buf(),
                source,
            })?;
        index.check().map_err(|problem| KeyError::InvalidIndex {
            path: path.to_path_buf(),
            problem,
        })?;
        Ok(index)
    }

    /// Writes the index to `path` atomically.
    ///
    /// # Errors
    ///
    /// [`KeyError::WriteFile`] when writing fails.
    pub(crate) fn save(&self, path: &Path) -> Result<(), KeyError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|source| KeyError::EncodeJson {
            document: "key index",
            source,
        })?;
        json.push(b'\n');
        write_atomically(path, &json, PRIVATE_FILE_MODE).map_err(|source| KeyError::WriteFile {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Returns the key that signs new tokens.
    pub(crate) fn signing_key(&self) -> Option<&KeyRecord> {
        self.keys
            .last()
            .filter(|record| record.retired_at.is_none())
    }

    /// Marks the signing key retired at `now` and appends `record` as the new signing key.
    pub(crate) fn push_signing_key(&mut self, record: KeyRecord, now: u64) {
        for key in &mut self.keys {
            key.retired_at.get_or_insert(now);
        }
        self.keys.push(record);
    }

    /// Removes retired keys whose tokens have all expired: those retired at least
    /// `publish_secs` before `now`. Returns the removed records.
    pub(crate) fn remove_expired(&mut self, now: u64, publish_secs: u64) -> Vec<KeyRecord> {
        let (expired, kept): (Vec<_>, Vec<_>) = self.keys.drain(..).partition(|record| {
            record
                .retired_at
                .is_some_and(|retired| retired.saturating_add(publish_secs) <= now)
        });
        self.keys = kept;
        expired
    }

    fn check(&self) -> Result<(), String> {
        if self.version != INDEX_VERSION {
            return Err(format!(
                "version {} is not the supported version {INDEX_VERSION}",
                self.version
            ));
        }
        let active = self
            .keys
            .iter()
            .filter(|record| record.retired_at.is_none())
            .count();
        if !self.keys.is_empty() && (active != 1 || self.signing_key().is_none()) {
            return Err(format!(
                "{active} keys lack `retired_at`, but exactly one must, the last one"
            ));
        }
        for record in &self.keys {
            let plain_name = Path::new(&record.file)
                .file_name()
                .is_some_and(|name| name == record.file.as_str());
            if !plain_name || record.file.starts_with('.') {
                return Err(format!(
                    "file {:?} of key {} is not a plain file name in the key directory",
                    record.file, record.kid
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kid: &str, created_at: u64, retired_at: Option<u64>) -> KeyRecord {
        KeyRecord {
            kid: kid.to_owned(),
            algorithm: SigningAlgorithm::RS256,
            file: format!("{kid}.pem"),
            created_at,
            retired_at,
        }
    }

    #[test]
    fn push_retires_previous_signing_key() {
        let mut index = KeyIndex::empty();
        index.push_signing_key(record("a", 100, None), 100);
        index.push_signing_key(record("b", 200, None), 200);

        assert_eq!(index.keys[0].retired_at, Some(200));
        assert_eq!(index.signing_key().unwrap().kid, "b");
        assert_eq!(index.check(), Ok(()));
    }

    #[test]
    fn remove_expired_keeps_recent_and_signing_keys() {
        let mut index = KeyIndex::empty();
        index.keys = vec![
            record("old", 0, Some(1000)),
            record("recent", 1000, Some(5000)),
            record("signing", 5000, None),
        ];

        let removed = index.remove_expired(5000, 3600);

        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].kid, "old");
        let kept: Vec<_> = index
            .keys
            .iter()
            .map(|record| record.kid.as_str())
            .collect();
        assert_eq!(kept, ["recent", "signing"]);
    }

    #[test]
    fn check_rejects_two_signing_keys() {
        let mut index = KeyIndex::empty();
        index.keys = vec![record("a", 0, None), record("b", 1, None)];
        assert!(index.check().unwrap_err().contains("exactly one"));
    }

    #[test]
    fn check_rejects_paths_outside_directory() {
        let mut index = KeyIndex::empty();
        let mut escaping = record("a", 0, None);
        escaping.file = "../a.pem".to_owned();
        index.keys = vec![escaping];
        assert!(index.check().unwrap_err().contains("plain file name"));
    }

    #[test]
    fn save_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let mut index = KeyIndex::empty();
        index.push_signing_key(record("a", 100, None), 100);

        index.save(&path).unwrap();

        assert_eq!(KeyIndex::load(&path).unwrap(), Some(index));
        assert_eq!(
            KeyIndex::load(&dir.path().join("missing.json")).unwrap(),
            None
        );
    }
}
