//! Reading one provider's JWKS document, over HTTP(S), through OpenID Connect discovery, or
//! from a file, bounded in size and time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use tokio::io::AsyncReadExt;

use super::discovery::parse_discovery;
use super::KeyError;
use crate::config::{JwksSource, ProviderConfig};

/// Largest JWKS document accepted. Real sets hold a handful of keys (a 4096-bit RSA JWK is
/// under 1 KiB), so 1 MiB leaves ample room while bounding memory per fetch.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// A failed JWKS fetch, naming the URI or file it read.
#[derive(Debug, thiserror::Error)]
#[error("fetching the JWKS from {location} failed: {problem}")]
pub struct FetchError {
    pub location: String,
    pub problem: FetchProblem,
}

/// The cause of a failed JWKS fetch.
#[derive(Debug)]
pub enum FetchProblem {
    TimedOut(Duration),
    Request(String),
    Status(StatusCode),
    TooLarge,
    Body(String),
    File(std::io::Error),
    InvalidDocument(String),
    /// The discovery document could not be read or does not name a usable `jwks_uri`.
    Discovery(String),
    NoUsableKeys {
        skipped: usize,
    },
}

impl fmt::Display for FetchProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchProblem::TimedOut(after) => {
                write!(f, "timed out after {after:?}; check that the issuer is reachable or raise fetch_timeout_secs")
            }
            FetchProblem::Request(message) => write!(f, "{message}"),
            FetchProblem::Status(status) => write!(f, "the server returned {status}, expected 200"),
            FetchProblem::TooLarge => write!(f, "the document is larger than {MAX_JWKS_BYTES} bytes"),
            FetchProblem::Body(message) => write!(f, "reading the body failed: {message}"),
            FetchProblem::File(err) => write!(f, "{err}"),
            FetchProblem::InvalidDocument(message) => write!(f, "{message}"),
            FetchProblem::Discovery(message) => write!(f, "discovery failed: {message}"),
            FetchProblem::NoUsableKeys { skipped } => write!(
                f,
                "the set has no usable key ({skipped} skipped); publish an RSA, EC P-256/P-384 or Ed25519 signing key"
            ),
        }
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Reads the JWKS document of one provider.
pub enum Fetcher {
    Http {
        /// Boxed because it is large next to the `File` variant.
        target: Box<HttpTarget>,
        /// Boxed because the client is large next to the `File` variant.
        client: Box<HttpClient>,
        timeout: Duration,
    },
    File {
        path: PathBuf,
    },
}

/// The location an HTTP fetcher reads the JWKS from.
pub enum HttpTarget {
    /// A configured `jwks_uri`.
    Jwks(Uri),
    /// The `jwks_uri` of the issuer's discovery document, remembered between fetches.
    Discovery {
        document: Uri,
        issuer: String,
        jwks_uri: Mutex<Option<Uri>>,
    },
}

/// A file's modification time, length and inode, compared to notice that a JWKS file
/// changed. The inode catches a file replaced by rename (as Kubernetes updates mounted
/// ConfigMaps) within the timestamp resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Fetcher {
    /// Prepares the fetcher. An HTTPS URI trusts the provider's `ca_file` when it is set and
    /// the system's CA certificates otherwise.
    pub fn new(provider: &ProviderConfig) -> Result<Fetcher, KeyError> {
        let (uri, target) = match &provider.jwks {
            JwksSource::File(path) => return Ok(Fetcher::File { path: path.clone() }),
            JwksSource::Uri(uri) => (uri.clone(), HttpTarget::Jwks(uri.clone())),
            JwksSource::Discovery(document) => (
                document.clone(),
                HttpTarget::Discovery {
                    document: document.clone(),
                    issuer: provider.issuer.clone(),
                    jwks_uri: Mutex::new(None),
                },
            ),
        };

        let tls = match (
            &provider.ca_file,
            uri.scheme() == Some(&http::uri::Scheme::HTTPS),
        ) {
            (Some(ca_file), _) => {
                crate::tls::client_config(ca_file, None).map_err(|source| KeyError::Tls {
                    issuer: provider.issuer.clone(),
                    source,
                })?
            }
            (None, true) => system_roots_config(&provider.issuer)?,
            // Plain HTTP never uses TLS, but the connector needs a config.
            (None, false) => tls_config(RootCertStore::empty(), &provider.issuer)?,
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Fetcher::Http {
            target: Box::new(target),
            client: Box::new(client),
            timeout: provider.fetch_timeout,
        })
    }

    /// Returns the URI or path the document is read from, for logs and errors. With
    /// discovery, that is the last `jwks_uri` found, or the discovery document's URI before
    /// the first discovery.
    pub fn location(&self) -> String {
        let target = match self {
            Fetcher::Http { target, .. } => target.as_ref(),
            Fetcher::File { path } => return path.display().to_string(),
        };
        match target {
            HttpTarget::Jwks(uri) => uri.to_string(),
            HttpTarget::Discovery {
                document, jwks_uri, ..
            } => match lock(jwks_uri).as_ref() {
                Some(uri) => uri.to_string(),
                None => document.to_string(),
            },
        }
    }

    /// Reads the JWKS document, at most [`MAX_JWKS_BYTES`] long. With discovery, the
    /// discovery document is read first when `rediscover` is set or no `jwks_uri` is known
    /// yet; otherwise the last `jwks_uri` found is used. The time limit covers both reads.
    pub async fn fetch(&self, rediscover: bool) -> Result<Bytes, FetchError> {
        let result = match self {
            Fetcher::Http {
                target,
                client,
                timeout,
            } => {
                let fetch = fetch_target(client, target, rediscover);
                match tokio::time::timeout(*timeout, fetch).await {
                    Ok(result) => result,
                    Err(_) => Err(FetchProblem::TimedOut(*timeout)),
                }
            }
            Fetcher::File { path } => read_file(path).await,
        };
        result.map_err(|problem| self.error(problem))
    }

    /// Returns the stamp of a JWKS file, or `None` for an HTTP source or a file that cannot
    /// be read.
    pub fn file_stamp(&self) -> Option<FileStamp> {
        match self {
            Fetcher::File { path } => stamp(path),
            Fetcher::Http { .. } => None,
        }
    }

    /// Wraps `problem` with this fetcher's location.
    pub fn error(&self, problem: FetchProblem) -> FetchError {
        FetchError {
            location: self.location(),
            problem,
        }
    }
}

async fn fetch_target(
    client: &HttpClient,
    target: &HttpTarget,
    rediscover: bool,
) -> Result<Bytes, FetchProblem> {
    let (document, issuer, remembered) = match target {
        HttpTarget::Jwks(uri) => return fetch_http(client, uri).await,
        HttpTarget::Discovery {
            document,
            issuer,
            jwks_uri,
        } => (document, issuer, jwks_uri),
    };

    let known = lock(remembered).clone();
    let jwks_uri = match known {
        Some(uri) if !rediscover => uri,
        _ => {
            let body = fetch_http(client, document).await.map_err(|problem| {
                FetchProblem::Discovery(format!("reading {document} failed: {problem}"))
            })?;
            let uri = parse_discovery(&body, issuer).map_err(FetchProblem::Discovery)?;
            *lock(remembered) = Some(uri.clone());
            uri
        }
    };
    fetch_http(client, &jwks_uri).await
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode,
    })
}

async fn fetch_http(client: &HttpClient, uri: &Uri) -> Result<Bytes, FetchProblem> {
    let request = Request::get(uri.clone())
        .header(header::ACCEPT, "application/jwk-set+json, application/json")
        .header(header::USER_AGENT, "portcullis")
        .body(Empty::new())
        .map_err(|err| FetchProblem::Request(err.to_string()))?;
    let response = client
        .request(request)
        .await
        .map_err(|err| FetchProblem::Request(error_chain(&err)))?;
    if response.status() != StatusCode::OK {
        return Err(FetchProblem::Status(response.status()));
    }

    match Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(FetchProblem::TooLarge),
        Err(err) => Err(FetchProblem::Body(error_chain(err.as_ref()))),
    }
}

async fn read_file(path: &PathBuf) -> Result<Bytes, FetchProblem> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(FetchProblem::File)?;
    let mut contents = Vec::new();
    // Reading one byte past the limit distinguishes a file of exactly the limit from a larger one.
    file.take(MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut contents)
        .await
        .map_err(FetchProblem::File)?;
    if contents.len() > MAX_JWKS_BYTES {
        return Err(FetchProblem::TooLarge);
    }
    Ok(Bytes::from(contents))
}

fn system_roots_config(issuer: &str) -> Result<ClientConfig, KeyError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unparsable) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        return Err(KeyError::NoSystemRoots {
            issuer: issuer.to_owned(),
            detail: errors.join("; "),
        });
    }
    tls_config(roots, issuer)
}

fn tls_config(roots: RootCertStore, issuer: &str) -> Result<ClientConfig, KeyError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| KeyError::TlsVersions {
            issuer: issuer.to_owned(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Joins an error and its sources, because hyper's top-level messages such as "client error
/// (Connect)" hide the cause.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
