//! Atomic file writes, so a reader never sees a half-written key or token file.

use std::fs::Permissions;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Owner read and write only, for private keys.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Readable by everyone, for public keys, JWKS documents and token lists. Token lists are
/// bearer credentials, but only for the throwaway issuer of one benchmark run.
pub const PUBLIC_FILE_MODE: u32 = 0o644;

/// Replaces `path` with `contents`: writes a temporary file in the same folder with `mode`,
/// flushes it to disk, then renames it over `path`.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(folder)?;
    file.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|err| err.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomically(&path, b"first", PRIVATE_FILE_MODE).unwrap();
        write_atomically(&path, b"second", PRIVATE_FILE_MODE).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }
}
