//! Crash-safe file writes for keys, certificates and the key index.
//!
//! A reader, including another process, reads either the old file or the complete new one,
//! never a partial write. A private key file is never readable by others, not even briefly.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rand::rngs::OsRng;
use rand::RngCore;

/// File mode of private keys and of files that name them.
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;

/// File mode of certificates, which clients need to read.
pub(crate) const PUBLIC_FILE_MODE: u32 = 0o644;

/// Creates `dir` and its missing parents with mode 0700, because the directory contains
/// private keys. An existing directory keeps its mode.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Replaces `path` with `contents` atomically.
///
/// Writes a temporary file in the same directory, created with `mode` (so a private key is
/// never exposed with a wider mode), syncs it, renames it over `path`, then syncs the
/// directory so the rename survives a crash. The process umask may narrow `mode` further.
pub(crate) fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    let dir = dir.unwrap_or_else(|| Path::new("."));
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;

    let mut suffix = [0u8; 8];
    OsRng.fill_bytes(&mut suffix);
    let temp_name = format!(
        ".{}.{:016x}.tmp",
        file_name.to_string_lossy(),
        u64::from_le_bytes(suffix)
    );
    let temp_path = dir.join(temp_name);

    let result = write_then_rename(&temp_path, path, contents, mode);
    if result.is_err() {
        // The temporary file may not exist, depending on the step that failed.
        let _ = fs::remove_file(&temp_path);
    }
    result?;
    File::open(dir)?.sync_all()
}

fn write_then_rename(temp_path: &Path, path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temp_path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp_path, path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn write_creates_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");

        write_atomically(&path, b"secret", PRIVATE_FILE_MODE).unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"secret");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");

        write_atomically(&path, b"first", PRIVATE_FILE_MODE).unwrap();
        write_atomically(&path, b"second", PRIVATE_FILE_MODE).unwrap();

        assert_eq!(fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["index.json"]);
    }

    #[test]
    fn private_dir_has_mode_0700() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");

        create_private_dir(&nested).unwrap();

        let mode = fs::metadata(&nested).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
