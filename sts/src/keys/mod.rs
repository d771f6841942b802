//! Signing keys: generation on first start, rotation, pruning of expired keys, and the
//! live view a running server signs with and publishes as its JWKS.
//!
//! Keys live in `<data_dir>/keys/` as `<kid>.pem` (PKCS#8, mode 0600) next to `index.json`.
//! The rotation command and a running server share the directory: the server compares the
//! index file's identity and modification time on every token or JWKS request, and reloads
//! it when another process replaced it.

mod index;
mod material;
mod store;

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tracing::{info, warn};

use crate::clock::now_unix;
use crate::config::SigningAlgorithm;
use crate::files::{create_private_dir, write_atomically, PRIVATE_FILE_MODE};

pub(crate) use index::{KeyIndex, KeyRecord};
pub(crate) use material::{generate_pem, parse_pem, KeyMaterial};
pub(crate) use store::{KeySnapshot, KeyStore};

/// Name of the key directory inside the data directory.
const KEY_DIR: &str = "keys";

/// Name of the index file inside the key directory.
const INDEX_FILE: &str = "index.json";

/// Extra time a retired key stays published beyond the longest token lifetime. It covers a
/// running server that signs a few more tokens with the old key before it notices a
/// rotation, and verifiers that accept expired tokens within a small clock leeway.
pub(crate) const RETIRED_KEY_GRACE_SECS: u64 = 60;

/// Failures to read, write or use signing keys.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("failed to create key directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to read key index {path}: {source}")]
    ReadIndex {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("invalid key index {path}: {source}; restore it from a backup or delete the key directory to start over")]
    ParseIndex {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("failed to encode the {document}: {source}")]
    EncodeJson {
        document: &'static str,
        #[source]
        source: serde_json::Error,
    },

    #[error("invalid key index {path}: {problem}; restore it from a backup or delete the key directory to start over")]
    InvalidIndex { path: PathBuf, problem: String },

    #[error("failed to write {path}: {source}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to read signing key {path}: {source}")]
    ReadKey {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("invalid signing key {path}: {problem}")]
    InvalidKey { path: PathBuf, problem: String },

    #[error("signing key {path} has kid {actual}, but the index lists it as {expected}; restore the file or remove its entry from the index")]
    KidMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("failed to generate a {algorithm} signing key: {problem}")]
    Generate {
        algorithm: &'static str,
        problem: String,
    },

    #[error(
        "the key index {path} lists no signing key; run `portcullis-sts rotate-key` to add one"
    )]
    NoSigningKey { path: PathBuf },
}

/// Returns the key directory inside `data_dir`.
pub(crate) fn key_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(KEY_DIR)
}

/// Prepares the key directory for serving: removes expired retired keys, and adds a signing
/// key when there is none or when the signing key's algorithm differs from `algorithm`.
///
/// `max_token_lifetime_secs` is the longest access token lifetime of any client; a retired
/// key is removed once every token it signed has expired.
///
/// # Errors
///
/// Any [`KeyError`] from reading, generating or writing keys.
pub(crate) fn prepare(
    data_dir: &Path,
    algorithm: SigningAlgorithm,
    max_token_lifetime_secs: u64,
) -> Result<(), KeyError> {
    let dir = key_dir(data_dir);
    let mut index = open_index(&dir)?;
    let removed = index.remove_expired(now_unix(), publish_secs(max_token_lifetime_secs));

    match index.signing_key() {
        Some(signing) if signing.algorithm == algorithm => {
            if !removed.is_empty() {
                index.save(&dir.join(INDEX_FILE))?;
            }
        }
        Some(signing) => {
            info!(
                kid = %signing.kid,
                from = signing.algorithm.as_str(),
                to = algorithm.as_str(),
                "signing_algorithm changed, rotating the signing key"
            );
            add_signing_key(&dir, &mut index, algorithm)?;
        }
        None => {
            add_signing_key(&dir, &mut index, algorithm)?;
        }
    }
    delete_key_files(&dir, &removed);
    Ok(())
}

/// Adds a new signing key of `algorithm` and retires the current one, which stays published
/// until the tokens it signed have expired. Also removes retired keys that have expired.
/// Returns the new key's `kid`.
///
/// # Errors
///
/// Any [`KeyError`] from reading, generating or writing keys.
pub(crate) fn rotate(
    data_dir: &Path,
    algorithm: SigningAlgorithm,
    max_token_lifetime_secs: u64,
) -> Result<String, KeyError> {
    let dir = key_dir(data_dir);
    let mut index = open_index(&dir)?;
    let removed = index.remove_expired(now_unix(), publish_secs(max_token_lifetime_secs));
    let kid = add_signing_key(&dir, &mut index, algorithm)?;
    delete_key_files(&dir, &removed);
    Ok(kid)
}

fn open_index(dir: &Path) -> Result<KeyIndex, KeyError> {
    create_private_dir(dir).map_err(|source| KeyError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(KeyIndex::load(&dir.join(INDEX_FILE))?.unwrap_or_else(KeyIndex::empty))
}

/// Generates a key, writes its file, then the index that names it, so the index never lists
/// a file that does not exist yet.
fn add_signing_key(
    dir: &Path,
    index: &mut KeyIndex,
    algorithm: SigningAlgorithm,
) -> Result<String, KeyError> {
    let pem = generate_pem(algorithm).map_err(|problem| KeyError::Generate {
        algorithm: algorithm.as_str(),
        problem,
    })?;
    let material = parse_pem(algorithm, &pem).map_err(|problem| KeyError::Generate {
        algorithm: algorithm.as_str(),
        problem,
    })?;

    let file = format!("{}.pem", material.kid);
    let path = dir.join(&file);
    write_atomically(&path, pem.as_bytes(), PRIVATE_FILE_MODE)
        .map_err(|source| KeyError::WriteFile { path, source })?;

    let now = now_unix();
    index.push_signing_key(
        KeyRecord {
            kid: material.kid.clone(),
            algorithm,
            file,
            created_at: now,
            retired_at: None,
        },
        now,
    );
    index.save(&dir.join(INDEX_FILE))?;
    info!(kid = %material.kid, algorithm = algorithm.as_str(), "added signing key");
    Ok(material.kid)
}

/// Deletes the files of keys already removed from the index. A failure leaves an unused
/// file behind, which is logged but harmless.
fn delete_key_files(dir: &Path, removed: &[KeyRecord]) {
    for record in removed {
        let path = dir.join(&record.file);
        match std::fs::remove_file(&path) {
            Ok(()) => info!(kid = %record.kid, "deleted expired signing key"),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => warn!(
                kid = %record.kid,
                path = %path.display(),
                %error,
                "failed to delete expired signing key file"
            ),
        }
    }
}

fn publish_secs(max_token_lifetime_secs: u64) -> u64 {
    max_token_lifetime_secs.saturating_add(RETIRED_KEY_GRACE_SECS)
}

#[cfg(test)]
mod tests;
