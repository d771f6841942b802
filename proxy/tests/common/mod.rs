//! Shared fixtures for the sidecar's end-to-end tests: a signing key and its JWKS, test
//! certificates, a recording app, a JWKS server, config files and HTTP clients. Everything
//! listens on 127.0.0.1.

#![allow(dead_code)] // Each test binary uses a different subset.

pub mod raw;
/// Key material and signing, shared with the library's unit tests.
pub use portcullis_testkit::signing;
pub mod tokens;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use portcullis::config::Config;
use portcullis::RunningSidecar;

use signing::{jwks, TestKey};

pub const ISSUER: &str = "https://sts.test";
pub const KID: &str = "test-key-1";
/// Upper bound for polling loops (readiness, a listener closing). Tests wait for a state and
/// never assert on how long it took. This bound only keeps a broken build from hanging.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// Tokens

/// An RSA key that signs test tokens, with the JWKS that publishes its public half.
pub struct Signer {
    key: TestKey,
    pub jwks: String,
}

/// Returns the signer. Its key is the third shared RSA key of [`TestKey::rsa`], so tests
/// that also create keys from the first two get distinct keys.
pub fn signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| {
        let key = TestKey::rsa(KID, 2);
        let jwks = jwks(&[&key]).to_string();
        Signer { key, jwks }
    })
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// RFC 9068 access-token claims as the STS issues them, valid for five minutes.
pub fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "sub": "peter",
        "aud": ["orders", "inventory"],
        "client_id": "applicationid",
        "scope": "foo bar",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": format!("jti-{}", rand::random::<u64>()),
    })
}

impl Signer {
    /// Signs `claims` with RS256, `typ: at+jwt` and the test `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.key.sign(claims)
    }

    /// Signs a valid token with the default claims.
    pub fn token(&self) -> String {
        self.sign(&claims())
    }

    /// Signs a valid token whose claims are the defaults with `changes` merged in.
    pub fn token_with(&self, changes: Value) -> String {
        let mut claims = claims();
        let object = claims.as_object_mut().expect("claims are an object");
        for (name, value) in changes.as_object().expect("changes are an object") {
            object.insert(name.clone(), value.clone());
        }
        self.sign(&claims)
    }
}

/// Flips one character in the signature part of a compact JWS.
pub fn tamper_signature(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').expect("compact JWS has three parts");
    let mut chars: Vec<char> = signature.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    format!("{signed}.{}", chars.into_iter().collect::<String>())
}

// ---------------------------------------------------------------------------------------
// Certificates

/// A test CA, a server certificate for `localhost` and 127.0.0.1, and a client certificate,
/// written as PEM files into a temporary folder.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };

    let dir = tempfile::tempdir().expect("temporary folder");
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write PEM file");
        path
    };

    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Portcullis test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");

    let server_key = KeyPair::generate().expect("server key");
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params
        .signed_by(&server_key, &ca_cert, &ca_key)
        .expect("server certificate");

    let client_key = KeyPair::generate().expect("client key");
    let mut client_params =
        CertificateParams::new(vec!["orders".to_owned()]).expect("client params");
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params
        .signed_by(&client_key, &ca_cert, &ca_key)
        .expect("client certificate");

    Pki {
        ca: write("ca.pem", ca_cert.pem()),
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
        dir,
    }
}

// ---------------------------------------------------------------------------------------
// In-test servers

/// A request as the app received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// Returns every value of header `name`, as strings.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect()
    }

    /// Returns the only value of header `name`, and panics when there are none or several.
    pub fn one(&self, name: &str) -> String {
        let values = self.all(name);
        assert_eq!(
            values.len(),
            1,
            "expected one `{name}` header, got {values:?}"
        );
        values[0].clone()
    }
}

/// A plain HTTP/1.1 app that records every request and responds 200 with a JSON body. Paths
/// starting with `/slow` wait for [`App::release`] before responding. Every response carries
/// hop-by-hop headers (`Connection: x-app-hop`, `X-App-Hop`, `Keep-Alive`) that the sidecar
/// must remove, and `X-App: yes`, which it must keep.
pub struct App {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    gate: Arc<Semaphore>,
}

impl App {
    pub async fn start() -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
        App::start_on(listener)
    }

    pub fn start_on(listener: TcpListener) -> App {
        let addr = listener.local_addr().expect("app address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Semaphore::new(0));
        let app = App {
            addr,
            requests: Arc::clone(&requests),
            gate: Arc::clone(&gate),
        };
        serve_http1(listener, move |request: Request<Incoming>| {
            let requests = Arc::clone(&requests);
            let gate = Arc::clone(&gate);
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let path = parts.uri.path().to_owned();
                requests.lock().unwrap().push(Recorded {
                    method: parts.method.to_string(),
                    uri: parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                    version: parts.version,
                    headers: parts.headers,
                    body,
                });
                if path.starts_with("/slow") {
                    let _permit = gate.acquire().await.expect("gate is never closed");
                }
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .header("x-app", "yes")
                    .header("connection", "x-app-hop")
                    .header("x-app-hop", "1")
                    .header("keep-alive", "timeout=5")
                    .body(Full::new(Bytes::from(json!({"path": path}).to_string())))
                    .unwrap()
            }
        });
        app
    }

    /// Returns every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Lets every waiting and future `/slow` request complete.
    pub fn release(&self) {
        self.gate.add_permits(1_000);
    }

    /// Waits until the app has received `count` requests.
    pub async fn wait_for_requests(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        while self.requests().len() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "app received {} requests, expected {count}",
                self.requests().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Serves the signer's JWKS at `/jwks.json` on `listener`.
pub fn serve_jwks(listener: TcpListener) {
    serve_http1(listener, |request: Request<Incoming>| async move {
        let (status, body) = if request.uri().path() == "/jwks.json" {
            (StatusCode::OK, signer().jwks.clone())
        } else {
            (StatusCode::NOT_FOUND, String::new())
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    });
}

/// Runs an HTTP/1.1 server on `listener` until the test's runtime ends.
fn serve_http1<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// Returns a free loopback port outside the range the kernel gives outgoing connections (see
/// [`portcullis_testkit::ports`]), for a server that starts after its port is named.
pub async fn free_port() -> u16 {
    portcullis_testkit::ports::loopback_ports(1).expect("a free loopback port")[0]
}

// ---------------------------------------------------------------------------------------
// Sidecar configuration

/// A sidecar config for tests: every listener on 127.0.0.1 port 0 unless set, JWKS from a
/// file (`jwks_file`) unless `jwks_uri` is set, and this route table: `/public` needs no
/// token, `/reports` needs scope `reports:read`, everything else needs a valid token.
pub struct Spec {
    pub dir: PathBuf,
    pub upstream: String,
    pub audience: &'static str,
    pub jwks_uri: Option<String>,
    pub inbound_listen: String,
    pub admin_listen: String,
    pub forward_authorization: bool,
    pub upstream_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    /// Extra TOML appended at the end, such as `[inbound.tls]` or `[outbound]` tables.
    pub extra: String,
}

impl Spec {
    /// Creates a spec for an app at `upstream`, with config files written under `dir`.
    pub fn new(dir: &Path, upstream: SocketAddr) -> Spec {
        Spec {
            dir: dir.to_owned(),
            upstream: format!("http://{upstream}"),
            audience: "orders",
            jwks_uri: None,
            inbound_listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            forward_authorization: true,
            upstream_timeout_secs: 30,
            shutdown_grace_secs: 20,
            extra: String::new(),
        }
    }

    /// Adds `[inbound.tls]` with the PKI's server certificate, and its CA as `client_ca`
    /// when `mutual` is set.
    pub fn with_tls(mut self, pki: &Pki, mutual: bool) -> Spec {
        self.extra.push_str(&format!(
            "\n[inbound.tls]\ncert = {:?}\nkey = {:?}\n",
            pki.server_cert, pki.server_key
        ));
        if mutual {
            self.extra.push_str(&format!("client_ca = {:?}\n", pki.ca));
        }
        self
    }

    pub fn to_toml(&self) -> String {
        let jwks = match &self.jwks_uri {
            Some(uri) => format!("jwks_uri = {uri:?}\nfetch_timeout_secs = 1"),
            None => {
                let path = self.dir.join("jwks.json");
                std::fs::write(&path, &signer().jwks).expect("write JWKS file");
                format!("jwks_file = {path:?}")
            }
        };
        format!(
            r#"shutdown_grace_secs = {grace}

[inbound]
listen = "{listen}"
upstream = "{upstream}"
forward_authorization = {forward}
upstream_timeout_secs = {timeout}

[[providers]]
issuer = "{ISSUER}"
audiences = ["{audience}"]
algorithms = ["RS256"]
{jwks}

[[routes]]
prefix = "/public"
auth = "none"

[[routes]]
prefix = "/reports"
scopes = ["reports:read"]

[admin]
listen = "{admin}"
{extra}"#,
            grace = self.shutdown_grace_secs,
            listen = self.inbound_listen,
            upstream = self.upstream,
            forward = self.forward_authorization,
            timeout = self.upstream_timeout_secs,
            audience = self.audience,
            admin = self.admin_listen,
            extra = self.extra,
        )
    }

    /// Writes the config to `<dir>/<name>` and returns its path.
    pub fn write(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, self.to_toml()).expect("write config file");
        path
    }

    /// Starts an in-process sidecar with this config and waits until it is ready.
    pub async fn start(&self) -> RunningSidecar {
        let sidecar = self.start_unready().await;
        wait_ready(sidecar.admin_addr()).await;
        sidecar
    }

    /// Starts an in-process sidecar without waiting for its signing keys.
    pub async fn start_unready(&self) -> RunningSidecar {
        let config = Config::from_toml(&self.to_toml(), &self.dir).expect("valid test config");
        portcullis::start(config).await.expect("sidecar starts")
    }
}

/// Polls `/readyz` until it returns 200.
pub async fn wait_ready(admin: SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        if let Ok(response) = get(admin, "/readyz", None).await {
            if response.status == StatusCode::OK {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sidecar at admin {admin} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Clients

/// A response with its body read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("body is not JSON ({err}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

pub async fn read_reply(response: Response<Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("response body").to_bytes();
    Reply {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Sends `GET path` over plain HTTP/1.1, with `Authorization: Bearer <token>` when given.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Result<Reply, hyper_util::client::legacy::Error> {
    let mut request = Request::get(format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(request.body(Full::new(Bytes::new())).unwrap()).await
}

/// Sends a request over plain HTTP/1.1 on a new connection.
pub async fn send(
    request: Request<Full<Bytes>>,
) -> Result<Reply, hyper_util::client::legacy::Error> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let response = client.request(request).await?;
    Ok(read_reply(response).await)
}

/// Sends `GET uri` over cleartext HTTP/2 with prior knowledge (h2c) to `addr`. The URI's
/// authority becomes `:authority`, so it can name a host other than `addr`.
pub async fn get_h2c(addr: SocketAddr, uri: &str, token: Option<&str>) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let mut request = Request::get(uri).version(Version::HTTP_2);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("HTTP/2 response");
    read_reply(response).await
}

/// A response read from a raw socket.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// The status line and headers, all lower-cased.
    pub head: String,
    pub body: String,
}

/// Writes `head` (request line and headers, without the final blank line) exactly as given,
/// adds `Connection: close`, and reads the response until the server closes. Use it for
/// header spellings and repetitions that an HTTP library would normalise.
pub async fn raw_request(addr: SocketAddr, head: &str) -> RawReply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("{}\r\nConnection: close\r\n\r\n", head.trim_end());
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("response has a head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    RawReply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// Builds a rustls client config that trusts the test CA and, when `with_client_cert` is set,
/// presents the test client certificate.
pub fn tls_client_config(pki: &Pki, with_client_cert: bool) -> rustls::ClientConfig {
    let identity =
        with_client_cert.then_some((pki.client_cert.as_path(), pki.client_key.as_path()));
    portcullis::tls::client_config(&pki.ca, identity).expect("client TLS config")
}

/// Sends `GET https://localhost:<port><path>` with `config`, offering only `h2` by ALPN when
/// `http2` is set and only `http/1.1` otherwise.
pub async fn get_tls(
    config: rustls::ClientConfig,
    http2: bool,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Result<Reply, hyper_util::client::legacy::Error> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if http2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut client = Client::builder(TokioExecutor::new());
    client.http2_only(http2);
    let client: Client<_, Full<Bytes>> = client.build(connector);
    let mut request = Request::get(format!("https://localhost:{}{path}", addr.port()));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = client
        .request(request.body(Full::new(Bytes::new())).unwrap())
        .await?;
    Ok(read_reply(response).await)
}

/// Reads the value of one sample from Prometheus text, such as
/// `portcullis_requests_total{direction="inbound",status="200"}`.
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok()).flatten()
        })
}

/// Fetches `/metrics` from the admin listener.
pub async fn metrics_text(admin: SocketAddr) -> String {
    let reply = get(admin, "/metrics", None).await.expect("metrics request");
    assert_eq!(reply.status, StatusCode::OK);
    reply.body
}

/// Reads one sample from the admin listener's `/metrics`. A series not created yet reads as
/// 0, because Prometheus counters with labels appear only at their first increment.
pub async fn metric_value(admin: SocketAddr, sample: &str) -> f64 {
    metric(&metrics_text(admin).await, sample).unwrap_or(0.0)
}
