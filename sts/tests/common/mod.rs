//! Shared helpers: an in-process STS on a loopback port, an HTTPS client that trusts its
//! generated CA, and token verification against the served JWKS.

#![allow(dead_code)]

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Header, Validation};
use portcullis_sts::{start, AccessTokenClaims, RunningSts, StsConfig};
use serde_json::Value;
use tempfile::TempDir;

pub const FORM: &str = "application/x-www-form-urlencoded";
pub const CLIENT_ID: &str = "applicationid";
pub const CLIENT_SECRET: &str = "applicationsecret";

/// Returns the book's demo configuration on a free loopback port, keeping its files in `data_dir`.
pub fn demo_config(data_dir: &Path) -> StsConfig {
    StsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        ..StsConfig::default()
    }
}

/// An HTTP response with its body parsed as JSON (`Value::Null` for an empty body).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// Returns the `error` code of an OAuth error body.
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("<no error member>")
    }
}

/// A running in-process STS and a client for it.
pub struct TestSts {
    pub sts: RunningSts,
    pub client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    pub base: String,
    pub data_dir: TempDir,
}

impl TestSts {
    /// Starts the demo configuration after `change` adjusted it.
    pub async fn start_with(change: impl FnOnce(&mut StsConfig)) -> TestSts {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = demo_config(data_dir.path());
        change(&mut config);
        TestSts::start_in(config, data_dir).await
    }

    pub async fn start() -> TestSts {
        TestSts::start_with(|_| {}).await
    }

    /// Starts `config`, whose data directory must be inside `data_dir`.
    pub async fn start_in(config: StsConfig, data_dir: TempDir) -> TestSts {
        let sts = start(config).await.unwrap();
        let client = https_client(sts.ca_cert_path().unwrap());
        let base = format!("https://127.0.0.1:{}", sts.local_addr().port());
        TestSts {
            sts,
            client,
            base,
            data_dir,
        }
    }

    /// Sends a request and collects the reply.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        Reply {
            status,
            headers,
            json,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        let request = Request::get(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(request).await
    }

    /// Posts a form to the token endpoint with HTTP Basic client authentication.
    pub async fn token_basic(&self, id: &str, secret: &str, form: &str) -> Reply {
        let request = Request::post(format!("{}/oauth/token", self.base))
            .header(header::AUTHORIZATION, basic(id, secret))
            .header(header::CONTENT_TYPE, FORM)
            .body(Full::new(Bytes::from(form.to_owned())))
            .unwrap();
        self.send(request).await
    }

    /// Posts a form to the token endpoint without an Authorization header.
    pub async fn token_form(&self, form: &str) -> Reply {
        let request = Request::post(format!("{}/oauth/token", self.base))
            .header(header::CONTENT_TYPE, FORM)
            .body(Full::new(Bytes::from(form.to_owned())))
            .unwrap();
        self.send(request).await
    }

    /// Requests a token for peter with the book's client and returns the response body.
    pub async fn password_token(&self, extra: &str) -> Value {
        let form = format!("grant_type=password&username=peter&password=peter123{extra}");
        let reply = self.token_basic(CLIENT_ID, CLIENT_SECRET, &form).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
        reply.json
    }

    pub async fn jwks(&self) -> JwkSet {
        let reply = self.get("/.well-known/jwks.json").await;
        assert_eq!(reply.status, StatusCode::OK);
        serde_json::from_value(reply.json).unwrap()
    }

    /// Verifies `token` against the served JWKS and returns its header and claims.
    pub async fn verify(&self, token: &str) -> (Header, AccessTokenClaims) {
        verify_with(&self.jwks().await, token, self.sts.issuer())
    }

    pub async fn stop(self) {
        self.sts.shutdown().await;
    }
}

/// Verifies `token` with the key of `jwks` named by its `kid`, checking signature, issuer,
/// expiry and the `orders` audience the demo client always includes unless narrowed.
pub fn verify_with(jwks: &JwkSet, token: &str, issuer: &str) -> (Header, AccessTokenClaims) {
    let header = decode_header(token).unwrap();
    let kid = header.kid.as_deref().expect("token has a kid");
    let jwk = jwks.find(kid).expect("the JWKS publishes the token's kid");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub", "aud"]);
    let claims = decode::<AccessTokenClaims>(token, &key, &validation)
        .unwrap()
        .claims;
    (header, claims)
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Builds an HTTPS client that trusts only the CA in `ca_path`.
pub fn https_client(
    ca_path: &Path,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>> {
    let mut roots = rustls::RootCertStore::empty();
    let mut reader = BufReader::new(File::open(ca_path).unwrap());
    for cert in rustls_pemfile::certs(&mut reader) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}
