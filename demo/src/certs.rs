//! The demo's private certificate authority and the certificates it issues: one server
//! certificate per listener and a client certificate the order sidecar presents to the
//! inventory sidecar (mutual TLS).
//!
//! Everything is generated on first start and reused while every file is present. If any is
//! missing, the whole set is generated again, so certificates always chain to the CA on disk.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Names every server certificate is valid for, so `https://localhost:PORT` and
/// `https://127.0.0.1:PORT` both verify.
const LOCAL_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// File in the certificate folder listing the extra names the set was issued for, one per
/// line, so a later run with other names issues a new set instead of reusing this one.
const EXTRA_NAMES_FILE: &str = "extra-names.txt";

/// A certificate file and its private key file.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Paths of every file the demo CA produced.
#[derive(Debug, Clone)]
pub struct DemoCerts {
    /// The CA certificate: what clients pass to `curl --cacert` instead of `-k`.
    pub ca: PathBuf,
    pub sts: CertPair,
    pub orders: CertPair,
    pub inventory: CertPair,
    /// Client certificate of the order sidecar, accepted by the inventory sidecar.
    pub orders_client: CertPair,
}

/// A failure while creating the demo certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate the demo certificate `{name}`: {source}")]
    Generate { name: String, source: rcgen::Error },
}

impl DemoCerts {
    /// Returns the certificates in `dir`, generating all of them if any file is missing.
    pub fn load_or_create(dir: &Path) -> Result<DemoCerts, CertError> {
        DemoCerts::load_or_create_with_names(dir, &[])
    }

    /// Like [`DemoCerts::load_or_create`], with every certificate also valid for
    /// `extra_names` (DNS names or IP addresses), such as the host names of containers or
    /// the addresses of network namespaces. The set is generated again when it was issued
    /// for other names.
    pub fn load_or_create_with_names(
        dir: &Path,
        extra_names: &[String],
    ) -> Result<DemoCerts, CertError> {
        let certs = DemoCerts::paths(dir);
        let names_file = dir.join(EXTRA_NAMES_FILE);
        let complete = certs.all_files().iter().all(|path| path.is_file());
        if complete && read_names(&names_file) == extra_names {
            tracing::info!(dir = %dir.display(), "reusing the demo certificates");
            return Ok(certs);
        }
        fs::create_dir_all(dir).map_err(|source| CertError::Write {
            path: dir.to_owned(),
            source,
        })?;
        certs.generate(extra_names)?;
        if extra_names.is_empty() {
            // A set for no extra names is recognised by the file's absence, as before extra
            // names existed.
            if let Err(source) = fs::remove_file(&names_file) {
                if source.kind() != std::io::ErrorKind::NotFound {
                    return Err(CertError::Write {
                        path: names_file,
                        source,
                    });
                }
            }
        } else {
            let mut text = extra_names.join("\n");
            text.push('\n');
            write_file(&names_file, text.as_bytes(), 0o644)?;
        }
        tracing::info!(dir = %dir.display(), "generated a demo CA and certificates");
        Ok(certs)
    }

    /// Returns where the files of a set in `dir` are, without reading or creating them. A
    /// relative `dir` gives relative paths, as the demo's configuration files use.
    pub fn paths(dir: &Path) -> DemoCerts {
        let pair = |name: &str| CertPair {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        DemoCerts {
            ca: dir.join("ca.pem"),
            sts: pair("sts"),
            orders: pair("orders"),
            inventory: pair("inventory"),
            orders_client: pair("orders-client"),
        }
    }

    fn all_files(&self) -> Vec<&Path> {
        let mut files = vec![self.ca.as_path()];
        for pair in [
            &self.sts,
            &self.orders,
            &self.inventory,
            &self.orders_client,
        ] {
            files.push(&pair.cert);
            files.push(&pair.key);
        }
        files
    }

    fn generate(&self, extra_names: &[String]) -> Result<(), CertError> {
        let generate_error = |name: &str| {
            let name = name.to_owned();
            move |source| CertError::Generate { name, source }
        };

        let ca_key = KeyPair::generate().map_err(generate_error("ca"))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(generate_error("ca"))?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Portcullis demo CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .map_err(generate_error("ca"))?;

        let issue = |name: &str, pair: &CertPair, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().map_err(generate_error(name))?;
            let names: Vec<String> = LOCAL_NAMES
                .iter()
                .map(|n| n.to_string())
                .chain(extra_names.iter().cloned())
                .collect();
            let mut params = CertificateParams::new(names).map_err(generate_error(name))?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![usage];
            let cert = params
                .signed_by(&key, &ca_cert, &ca_key)
                .map_err(generate_error(name))?;
            write_file(&pair.key, key.serialize_pem().as_bytes(), 0o600)?;
            write_file(&pair.cert, cert.pem().as_bytes(), 0o644)
        };
        issue("sts", &self.sts, ExtendedKeyUsagePurpose::ServerAuth)?;
        issue("orders", &self.orders, ExtendedKeyUsagePurpose::ServerAuth)?;
        issue(
            "inventory",
            &self.inventory,
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        issue(
            "orders-sidecar",
            &self.orders_client,
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;

        // The CA key signs nothing after this run, so it is never written to disk. A rerun
        // generates a fresh CA.
        write_file(&self.ca, ca_cert.pem().as_bytes(), 0o644)
    }
}

/// Reads the extra names a set was issued for; a missing file means none.
fn read_names(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Writes `contents` atomically: a temporary file created with `mode` in the same folder,
/// synced, then renamed over `path`.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let write_error = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));

    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .map_err(write_error)?;
    file.write_all(contents).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    drop(file);
    fs::rename(&temp, path).map_err(write_error)?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_error)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_are_private_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = DemoCerts::load_or_create(dir.path()).expect("generated");
        let mode = fs::metadata(&first.orders.key)
            .expect("key exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let ca_before = fs::read(&first.ca).expect("ca exists");
        let second = DemoCerts::load_or_create(dir.path()).expect("reused");
        assert_eq!(fs::read(&second.ca).expect("ca exists"), ca_before);
    }

    #[test]
    fn extra_names_in_certificates() {
        let dir = tempfile::tempdir().expect("temp dir");
        let names = vec!["inventory".to_owned(), "10.20.30.40".to_owned()];
        let first = DemoCerts::load_or_create_with_names(dir.path(), &names).expect("generated");
        let pem = fs::read(&first.inventory.cert).expect("cert exists");
        let der = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .expect("one certificate")
            .expect("valid PEM");
        let text = String::from_utf8_lossy(der.as_ref()).into_owned();
        assert!(text.contains("inventory"), "DNS name missing");
        assert!(
            der.as_ref()
                .windows(4)
                .any(|window| window == [10, 20, 30, 40]),
            "IP address missing"
        );

        let ca_before = fs::read(&first.ca).expect("ca exists");
        DemoCerts::load_or_create_with_names(dir.path(), &names).expect("reused");
        assert_eq!(fs::read(&first.ca).expect("ca exists"), ca_before);
        DemoCerts::load_or_create(dir.path()).expect("regenerated without the names");
        assert_ne!(fs::read(&first.ca).expect("ca exists"), ca_before);
        assert!(!dir.path().join(EXTRA_NAMES_FILE).exists());
    }

    #[test]
    fn missing_file_regenerates_set() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = DemoCerts::load_or_create(dir.path()).expect("generated");
        let ca_before = fs::read(&first.ca).expect("ca exists");
        fs::remove_file(&first.inventory.key).expect("removed");
        let second = DemoCerts::load_or_create(dir.path()).expect("regenerated");
        assert!(second.inventory.key.is_file());
        assert_ne!(fs::read(&second.ca).expect("ca exists"), ca_before);
    }
}
