//! The running server's view of the key directory, reloaded when the index file changes.

use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use jsonwebtoken::jwk::JwkSet;
use tracing::{info, warn};

use super::{key_dir, parse_pem, KeyError, KeyIndex, KeyMaterial, INDEX_FILE};

/// Identity of one version of the index file. Every atomic write creates a new inode, so
/// the inode number changes even when two writes land within the same mtime tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    device: u64,
    inode: u64,
    modified_secs: i64,
    modified_nanos: i64,
    len: u64,
}

impl Fingerprint {
    fn of(metadata: &Metadata) -> Fingerprint {
        Fingerprint {
            device: metadata.dev(),
            inode: metadata.ino(),
            modified_secs: metadata.mtime(),
            modified_nanos: metadata.mtime_nsec(),
            len: metadata.len(),
        }
    }
}

/// The keys loaded from one version of the index.
#[derive(Debug)]
pub(crate) struct KeySnapshot {
    /// The key that signs new tokens.
    pub signing: KeyMaterial,
    /// The JWKS document: every key in the index, signing key first.
    pub jwks_json: Bytes,
    fingerprint: Fingerprint,
}

/// Shares the current [`KeySnapshot`] between requests and replaces it when the index
/// file changes.
#[derive(Debug)]
pub(crate) struct KeyStore {
    dir: PathBuf,
    index_path: PathBuf,
    current: RwLock<Arc<KeySnapshot>>,
    /// Serializes reloads and stores the fingerprint of the last index that failed to load,
    /// so a broken index is reported once instead of on every request.
    reload: Mutex<Option<Fingerprint>>,
}

impl KeyStore {
    /// Loads the keys of the index in `<data_dir>/keys/`.
    ///
    /// # Errors
    ///
    /// Any [`KeyError`] from reading the index or a key file, and
    /// [`KeyError::NoSigningKey`] when the index lists none.
    pub(crate) fn open(data_dir: &Path) -> Result<KeyStore, KeyError> {
        let dir = key_dir(data_dir);
        let index_path = dir.join(INDEX_FILE);
        let snapshot = load_snapshot(&dir, &index_path)?;
        Ok(KeyStore {
            dir,
            index_path,
            current: RwLock::new(Arc::new(snapshot)),
            reload: Mutex::new(None),
        })
    }

    /// Returns the current keys, after reloading them if the index file changed since they
    /// were loaded. When the new index cannot be loaded, logs why and keeps the old keys.
    pub(crate) fn snapshot(&self) -> Arc<KeySnapshot> {
        let current = self.current();
        match fs::metadata(&self.index_path) {
            Ok(metadata) if Fingerprint::of(&metadata) == current.fingerprint => current,
            Ok(metadata) => self.reload(Fingerprint::of(&metadata)),
            Err(error) => {
                let mut failed = self.reload.lock().unwrap_or_else(PoisonError::into_inner);
                if failed.is_none() {
                    warn!(path = %self.index_path.display(), %error, "key index is unreadable, signing with the keys loaded before");
                    *failed = Some(current.fingerprint);
                }
                current
            }
        }
    }

    fn current(&self) -> Arc<KeySnapshot> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&current)
    }

    fn reload(&self, seen: Fingerprint) -> Arc<KeySnapshot> {
        let mut failed = self.reload.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.current();
        if current.fingerprint == seen || *failed == Some(seen) {
            // Another request reloaded this version already, or it failed to load before.
            return current;
        }
        match load_snapshot(&self.dir, &self.index_path) {
            Ok(snapshot) => {
                info!(kid = %snapshot.signing.kid, "reloaded signing keys after the key index changed");
                let snapshot = Arc::new(snapshot);
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    Arc::clone(&snapshot);
                *failed = None;
                snapshot
            }
            Err(error) => {
                warn!(%error, kid = %current.signing.kid, "failed to reload signing keys, keeping the loaded ones");
                *failed = Some(seen);
                current
            }
        }
    }
}

/// Reads the index through one open file handle, so the fingerprint belongs to the bytes
/// parsed, then loads every key it lists.
fn load_snapshot(dir: &Path, index_path: &Path) -> Result<KeySnapshot, KeyError> {
    let read_error = |source| KeyError::ReadIndex {
        path: index_path.to_path_buf(),
        source,
    };
    let mut file = File::open(index_path).map_err(read_error)?;
    let fingerprint = Fingerprint::of(&file.metadata().map_err(read_error)?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(read_error)?;
    let index = KeyIndex::parse(&bytes, index_path)?;

    let signing_record = index
        .signing_key()
        .ok_or_else(|| KeyError::NoSigningKey {
            path: index_path.to_path_buf(),
        })?
        .clone();

    let mut jwks = JwkSet { keys: Vec::new() };
    let mut signing = None;
    for record in index.keys.iter().rev() {
        let path = dir.join(&record.file);
        let pem = zeroize::Zeroizing::new(fs::read_to_string(&path).map_err(|source| {
            KeyError::ReadKey {
                path: path.clone(),
                source,
            }
        })?);
        warn_if_readable_by_others(&path);
        let material =
            parse_pem(record.algorithm, &pem).map_err(|problem| KeyError::InvalidKey {
                path: path.clone(),
                problem,
            })?;
        if material.kid != record.kid {
            return Err(KeyError::KidMismatch {
                path,
                expected: record.kid.clone(),
                actual: material.kid,
            });
        }
        jwks.keys.push(material.jwk.clone());
        if record.kid == signing_record.kid {
            signing = Some(material);
        }
    }

    let signing = signing.ok_or_else(|| KeyError::NoSigningKey {
        path: index_path.to_path_buf(),
    })?;
    let jwks_json = serde_json::to_vec(&jwks).map_err(|source| KeyError::EncodeJson {
        document: "JWKS",
        source,
    })?;
    Ok(KeySnapshot {
        signing,
        jwks_json: Bytes::from(jwks_json),
        fingerprint,
    })
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(metadata) = fs::metadata(path) {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "signing key file is accessible to other users; run chmod 600 on it"
            );
        }
    }
}
