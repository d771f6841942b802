use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use super::*;

const LIFETIME: u64 = 3600;

fn read_index(data_dir: &Path) -> KeyIndex {
    KeyIndex::load(&key_dir(data_dir).join(INDEX_FILE))
        .unwrap()
        .unwrap()
}

fn jwks_kids(store: &KeyStore) -> Vec<String> {
    let jwks: Value = serde_json::from_slice(&store.snapshot().jwks_json).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn prepare_generates_private_key_once() {
    let data_dir = tempfile::tempdir().unwrap();

    prepare(data_dir.path(), SigningAlgorithm::EdDSA, LIFETIME).unwrap();
    let first = read_index(data_dir.path());
    prepare(data_dir.path(), SigningAlgorithm::EdDSA, LIFETIME).unwrap();
    let second = read_index(data_dir.path());

    assert_eq!(first, second);
    assert_eq!(first.keys.len(), 1);
    let record = &first.keys[0];
    assert_eq!(record.file, format!("{}.pem", record.kid));
    let key_path = key_dir(data_dir.path()).join(&record.file);
    let mode = fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = fs::metadata(key_dir(data_dir.path()))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
}

#[test]
fn prepare_rotates_when_algorithm_changes() {
    let data_dir = tempfile::tempdir().unwrap();
    prepare(data_dir.path(), SigningAlgorithm::EdDSA, LIFETIME).unwrap();

    prepare(data_dir.path(), SigningAlgorithm::ES256, LIFETIME).unwrap();

    let index = read_index(data_dir.path());
    assert_eq!(index.keys.len(), 2);
    assert_eq!(index.keys[0].algorithm, SigningAlgorithm::EdDSA);
    assert!(index.keys[0].retired_at.is_some());
    assert_eq!(
        index.signing_key().unwrap().algorithm,
        SigningAlgorithm::ES256
    );
}

#[test]
fn rotate_keeps_old_key_published() {
    let data_dir = tempfile::tempdir().unwrap();
    prepare(data_dir.path(), SigningAlgorithm::EdDSA, LIFETIME).unwrap();
    let store = KeyStore::open(data_dir.path()).unwrap();
    let old_kid = store.snapshot().signing.kid.clone();

    let new_kid = rotate(data_dir.path(), SigningAlgorithm::EdDSA, LIFETIME).unwrap();

    assert_ne!(new_kid, old_kid);
    let snapshot = store.snapshot();
    assert_eq!(snapshot.signing.kid, new_kid);
    assert_eq!(jwks_kids(&store), vec![new_kid, old_kid]);
}

#[test]
fn rotate_deletes_expired_keys() {
    let data_dir = tempfile::tempdir().unwrap();
    prepare(data_dir.path(), SigningAlgorithm::EdDSA, LIFETIME).unwrap();
    let old = read_index(data_dir.path()).keys[0].clone();

    // Backdate the retirement so the key's tokens have all expired.
    rotate(data_dir.path(), SigningAlgorithm::EdDSA, LIFETIME).unwrap();
    let mut index = read_index(data_dir.path());
    index.keys[0].retired_at = Some(now_unix() - LIFETIME - RETIRED_KEY_GRACE_SECS);
    index
        .save(&key_dir(data_dir.path()).join(INDEX_FILE))
        .unwrap();
    let newest = rotate(data_dir.path(), SigningAlgorithm::EdDSA, LIFETIME).unwrap();

    let index = read_index(data_dir.path());
    let kids: Vec<_> = index
        .keys
        .iter()
        .map(|record| record.kid.as_str())
        .collect();
    assert_eq!(kids.len(), 2);
    assert!(!kids.contains(&old.kid.as_str()));
    assert_eq!(kids[1], newest);
    assert!(!key_dir(data_dir.path()).join(&old.file).exists());
}

#[test]
fn store_keeps_keys_when_index_breaks() {
    let data_dir = tempfile::tempdir().unwrap();
    prepare(data_dir.path(), SigningAlgorithm::EdDSA, LIFETIME).unwrap();
    let store = KeyStore::open(data_dir.path()).unwrap();
    let kid = store.snapshot().signing.kid.clone();

    crate::files::write_atomically(
        &key_dir(data_dir.path()).join(INDEX_FILE),
        b"not json",
        PRIVATE_FILE_MODE,
    )
    .unwrap();

    assert_eq!(store.snapshot().signing.kid, kid);
    assert_eq!(store.snapshot().signing.kid, kid);
}

#[test]
fn store_rejects_swapped_key_file() {
    let data_dir = tempfile::tempdir().unwrap();
    prepare(data_dir.path(), SigningAlgorithm::EdDSA, LIFETIME).unwrap();
    let record = read_index(data_dir.path()).keys[0].clone();
    let other = generate_pem(SigningAlgorithm::EdDSA).unwrap();
    fs::write(
        key_dir(data_dir.path()).join(&record.file),
        other.as_bytes(),
    )
    .unwrap();

    let error = KeyStore::open(data_dir.path()).unwrap_err();

    assert!(matches!(error, KeyError::KidMismatch { .. }), "{error}");
}
