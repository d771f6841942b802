//! The generated local CA and the server certificate it issues.
//!
//! Clients trust the CA certificate, `sts-ca.pem`, instead of the server certificate itself
//! because webpki (used by rustls) rejects an end-entity certificate as its own trust
//! anchor in some cases. The CA is created once and kept. A startup issues a new server
//! certificate when the configured host names changed or the old one expires within
//! [`RENEW_BEFORE_DAYS`] days. A running server does not renew it.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tracing::info;

use super::TlsError;
use crate::files::{create_private_dir, write_atomically, PRIVATE_FILE_MODE, PUBLIC_FILE_MODE};

/// Validity of the generated CA. Ten years, because replacing it means every client must
/// trust a new file.
const CA_VALIDITY_DAYS: i64 = 3650;

/// Validity of the server certificate. One year; it is renewed at a startup close to expiry.
const SERVER_VALIDITY_DAYS: i64 = 365;

/// Remaining validity below which a startup issues a new server certificate.
pub(crate) const RENEW_BEFORE_DAYS: i64 = 30;

/// Names every generated server certificate covers, so `https://localhost:8443` and the
/// loopback addresses work without configuration.
const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

const CA_CERT_FILE: &str = "sts-ca.pem";
const CA_KEY_FILE: &str = "sts-ca-key.pem";
const SERVER_CERT_FILE: &str = "sts-cert.pem";
const SERVER_KEY_FILE: &str = "sts-key.pem";
/// Describes the server certificate, so a restart can decide whether to reuse it without
/// parsing X.509.
const SERVER_INFO_FILE: &str = "sts-cert.json";

/// Paths of the generated files the listener and its clients use.
#[derive(Debug, Clone)]
pub(crate) struct GeneratedFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ServerCertInfo {
    names: Vec<String>,
    /// Expiry, in seconds since the Unix epoch.
    not_after: i64,
}

/// Creates the CA and server certificate in `dir` when missing or outdated, and returns
/// their paths. `extra_names` are DNS names or IP addresses beyond [`DEFAULT_NAMES`].
///
/// # Errors
///
/// Any [`TlsError`] from reading, generating or writing the files.
pub(crate) fn ensure_generated(
    dir: &Path,
    extra_names: &[String],
) -> Result<GeneratedFiles, TlsError> {
    create_private_dir(dir).map_err(|source| TlsError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let files = GeneratedFiles {
        ca_cert: dir.join(CA_CERT_FILE),
        cert: dir.join(SERVER_CERT_FILE),
        key: dir.join(SERVER_KEY_FILE),
    };
    let ca_key_path = dir.join(CA_KEY_FILE);
    let info_path = dir.join(SERVER_INFO_FILE);

    let mut names: Vec<String> = DEFAULT_NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    for name in extra_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }

    let (ca, ca_key, ca_is_new) = load_or_create_ca(&files.ca_cert, &ca_key_path)?;
    let now = OffsetDateTime::now_utc();
    let reusable = !ca_is_new
        && files.cert.exists()
        && files.key.exists()
        && read_info(&info_path).is_some_and(|info| {
            info.names == names
                && info.not_after > (now + Duration::days(RENEW_BEFORE_DAYS)).unix_timestamp()
        });
    if !reusable {
        issue_server_cert(&files, &info_path, names, &ca, &ca_key, now)?;
    }
    Ok(files)
}

/// Loads the CA key and rebuilds a CA certificate object from it. Signing a server
/// certificate needs only the CA's name and key, and the rebuilt object has the same name
/// and key as the stored certificate. Returns whether the CA was created now.
fn load_or_create_ca(
    cert_path: &Path,
    key_path: &Path,
) -> Result<(Certificate, KeyPair, bool), TlsError> {
    let now = OffsetDateTime::now_utc();
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => {
            let pem = zeroize::Zeroizing::new(fs::read_to_string(key_path).map_err(|source| {
                TlsError::ReadFile {
                    path: key_path.to_path_buf(),
                    source,
                }
            })?);
            let key = KeyPair::from_pem(&pem).map_err(|source| TlsError::Generate {
                item: "CA key from its PEM file",
                source,
            })?;
            let cert = ca_params(now)
                .self_signed(&key)
                .map_err(|source| TlsError::Generate {
                    item: "CA certificate",
                    source,
                })?;
            Ok((cert, key, false))
        }
        (true, false) => Err(TlsError::IncompleteCa {
            present: cert_path.to_path_buf(),
            missing: key_path.to_path_buf(),
        }),
        (false, true) => Err(TlsError::IncompleteCa {
            present: key_path.to_path_buf(),
            missing: cert_path.to_path_buf(),
        }),
        (false, false) => {
            let key = KeyPair::generate().map_err(|source| TlsError::Generate {
                item: "CA key",
                source,
            })?;
            let cert = ca_params(now)
                .self_signed(&key)
                .map_err(|source| TlsError::Generate {
                    item: "CA certificate",
                    source,
                })?;
            // The key goes first: a certificate without its key is reported as incomplete.
            write(key_path, key.serialize_pem().as_bytes(), PRIVATE_FILE_MODE)?;
            write(cert_path, cert.pem().as_bytes(), PUBLIC_FILE_MODE)?;
            info!(path = %cert_path.display(), "generated a local CA; clients must trust this file");
            Ok((cert, key, true))
        }
    }
}

fn ca_params(now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Portcullis");
    name.push(DnType::CommonName, "Portcullis STS local CA");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    params
}

fn issue_server_cert(
    files: &GeneratedFiles,
    info_path: &Path,
    names: Vec<String>,
    ca: &Certificate,
    ca_key: &KeyPair,
    now: OffsetDateTime,
) -> Result<(), TlsError> {
    let mut params =
        CertificateParams::new(names.clone()).map_err(|source| TlsError::Generate {
            item: "server certificate names",
            source,
        })?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, "Portcullis");
    subject.push(DnType::CommonName, "Portcullis STS");
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    // An hour of slack lets clients with a slightly slow clock accept a new certificate.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(SERVER_VALIDITY_DAYS);

    let key = KeyPair::generate().map_err(|source| TlsError::Generate {
        item: "server key",
        source,
    })?;
    let cert = params
        .signed_by(&key, ca, ca_key)
        .map_err(|source| TlsError::Generate {
            item: "server certificate",
            source,
        })?;

    let info = ServerCertInfo {
        names,
        not_after: (now + Duration::days(SERVER_VALIDITY_DAYS)).unix_timestamp(),
    };
    // serde_json cannot fail on a struct of strings and integers.
    let info_json = serde_json::to_vec_pretty(&info).unwrap_or_default();

    write(
        &files.key,
        key.serialize_pem().as_bytes(),
        PRIVATE_FILE_MODE,
    )?;
    write(&files.cert, cert.pem().as_bytes(), PUBLIC_FILE_MODE)?;
    write(info_path, &info_json, PUBLIC_FILE_MODE)?;
    info!(names = ?info.names, path = %files.cert.display(), "issued the server certificate");
    Ok(())
}

fn read_info(path: &Path) -> Option<ServerCertInfo> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    write_atomically(path, contents, mode).map_err(|source| TlsError::WriteFile {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generated_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let files = ensure_generated(dir.path(), &[]).unwrap();

        assert_eq!(mode(&dir.path().join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&files.ca_cert), 0o644);
    }

    #[test]
    fn restart_reuses_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_generated(dir.path(), &[]).unwrap();
        let ca = fs::read(&first.ca_cert).unwrap();
        let cert = fs::read(&first.cert).unwrap();

        let second = ensure_generated(dir.path(), &[]).unwrap();

        assert_eq!(fs::read(&second.ca_cert).unwrap(), ca);
        assert_eq!(fs::read(&second.cert).unwrap(), cert);
    }

    #[test]
    fn new_hostname_reissues_server_cert_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_generated(dir.path(), &[]).unwrap();
        let ca = fs::read(&first.ca_cert).unwrap();
        let cert = fs::read(&first.cert).unwrap();

        let second = ensure_generated(dir.path(), &["sts.example.test".to_owned()]).unwrap();

        assert_eq!(fs::read(&second.ca_cert).unwrap(), ca);
        assert_ne!(fs::read(&second.cert).unwrap(), cert);
        let info = read_info(&dir.path().join(SERVER_INFO_FILE)).unwrap();
        assert_eq!(info.names.last().unwrap(), "sts.example.test");
    }

    #[test]
    fn missing_ca_key_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        ensure_generated(dir.path(), &[]).unwrap();
        fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();

        let error = ensure_generated(dir.path(), &[]).unwrap_err();

        assert!(matches!(error, TlsError::IncompleteCa { .. }), "{error}");
    }
}
