//! TLS for the listener: the rustls server configuration, built from operator-supplied PEM
//! files or from a certificate issued by a generated local CA (see [`generate`]).

mod generate;

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

use crate::config::{Settings, TlsMode};

use generate::ensure_generated;

/// Directory inside the data directory for generated TLS files.
const TLS_DIR: &str = "tls";

/// Failures to set up TLS.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("failed to read TLS file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "{path} contains no PEM certificate; point `tls.cert` at the server certificate chain"
    )]
    NoCertificate { path: PathBuf },

    #[error(
        "{path} contains no PEM private key; point `tls.key` at the key of the server certificate"
    )]
    NoPrivateKey { path: PathBuf },

    #[error("rustls rejected the certificate {cert} or the key {key}: {source}; check that the key belongs to the certificate")]
    Rustls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },

    #[error("failed to create TLS directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to write {path}: {source}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("found {present} but not {missing}; restore the missing file, or delete both to generate a new CA that clients must trust again")]
    IncompleteCa { present: PathBuf, missing: PathBuf },

    #[error("failed to generate the {item}: {source}")]
    Generate {
        item: &'static str,
        #[source]
        source: rcgen::Error,
    },
}

/// The TLS acceptor and, for a generated certificate, the CA file clients should trust.
pub(crate) struct TlsSetup {
    pub acceptor: TlsAcceptor,
    pub ca_cert_path: Option<PathBuf>,
}

/// Builds the TLS acceptor `settings` select; `Ok(None)` for plain HTTP.
///
/// # Errors
///
/// Any [`TlsError`] from reading, generating or loading certificates.
pub(crate) fn prepare(settings: &Settings) -> Result<Option<TlsSetup>, TlsError> {
    let (cert, key, ca_cert_path) = match &settings.tls {
        TlsMode::Disabled => return Ok(None),
        TlsMode::Files { cert, key } => (cert.clone(), key.clone(), None),
        TlsMode::Generated => {
            let files =
                ensure_generated(&settings.data_dir.join(TLS_DIR), &settings.tls_hostnames)?;
            (files.cert, files.key, Some(files.ca_cert))
        }
    };
    let config = server_config(&cert, &key)?;
    Ok(Some(TlsSetup {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_cert_path,
    }))
}

/// Builds a rustls server configuration with the ring provider, TLS 1.2 and 1.3, and ALPN
/// `http/1.1`, the only protocol the listener serves.
fn server_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, TlsError> {
    let certs = read_certs(cert_path)?;
    let key = read_key(key_path)?;
    let rustls_error = |source| TlsError::Rustls {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_error)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(rustls_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::ReadFile {
            path: path.to_path_buf(),
            source,
        })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|source| TlsError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        })
}
