//! Token sources, route claim requirements, claim headers and the `typ` check, each tested
//! with real requests to an in-process sidecar in front of a recording app on 127.0.0.1.
//! The tests also check that no token reaches the logs or the metrics.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use tempfile::TempDir;

use common::signing::{jwks, TestKey};
use common::tokens::{
    assert_invalid_token, assert_rejection, claims, claims_with, config_toml, config_toml_with,
    provider_toml, start, KeyServer, SignDefaultClaims, AUDIENCE, ISSUER,
};
use common::{metrics_text, raw_request, send, App, Reply};
use portcullis::RunningSidecar;

/// A sidecar in front of a recording app, with one provider serving one EC key.
struct Fixture {
    app: App,
    sidecar: RunningSidecar,
    key: TestKey,
    _server: KeyServer,
    _dir: TempDir,
}

impl Fixture {
    /// Starts a sidecar with `provider_extra` lines in its provider, `inbound_extra` lines
    /// in `[inbound]` and `body_extra` appended (routes, token sources, claim headers).
    async fn start(provider_extra: &str, inbound_extra: &str, body_extra: &str) -> Fixture {
        let app = App::start().await;
        let key = TestKey::ec("ec-1");
        let server = KeyServer::start(jwks(&[&key])).await;
        let dir = tempfile::tempdir().expect("temporary folder");
        let body = format!(
            "{}\n{body_extra}",
            provider_toml(ISSUER, AUDIENCE, &server, provider_extra)
        );
        let toml = config_toml_with(app.addr, inbound_extra, &body);
        let sidecar = start(dir.path(), &toml).await;
        Fixture {
            app,
            sidecar,
            key,
            _server: server,
            _dir: dir,
        }
    }

    /// Sends `GET uri` with the given headers, each `(name, value)` added as a separate line.
    async fn get(&self, uri: &str, headers: &[(&str, String)]) -> Reply {
        let mut request = Request::get(format!("http://{}{uri}", self.sidecar.inbound_addr()));
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        send(
            request
                .body(Full::new(Bytes::new()))
                .expect("valid request"),
        )
        .await
        .expect("request to the sidecar")
    }

    async fn get_with_token(&self, uri: &str, token: &str) -> Reply {
        self.get(uri, &[("authorization", format!("Bearer {token}"))])
            .await
    }
}

fn bearer(token: &str) -> Header {
    ("authorization", format!("Bearer {token}"))
}

/// A request header as (name, value).
type Header = (&'static str, String);

const ALL_SOURCES: &str =
    "[token_sources]\nquery_parameter = \"access_token\"\ncookie = \"session\"\n";

#[tokio::test]
async fn bearer_scheme_matches_any_case() {
    let fx = Fixture::start("", "", "").await;
    let token = fx.key.token();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let reply = fx
            .get("/orders", &[("authorization", format!("{scheme} {token}"))])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{scheme}: {}", reply.body);
    }
    assert_eq!(fx.app.requests().len(), 4);
}

#[tokio::test]
async fn ambiguous_credentials_get_400() {
    let fx = Fixture::start("", "", ALL_SOURCES).await;
    let token = fx.key.token();
    let other = fx.key.token();
    let cookie = |value: &str| ("cookie", value.to_owned());
    let cases: Vec<(&str, String, Vec<Header>)> = vec![
        (
            "two Authorization headers",
            "/orders".into(),
            vec![bearer(&token), bearer(&other)],
        ),
        (
            "Bearer and Basic headers",
            "/orders".into(),
            vec![
                bearer(&token),
                ("authorization", "Basic dXNlcjpwYXNz".into()),
            ],
        ),
        (
            "two tokens in one header",
            "/orders".into(),
            vec![("authorization", format!("Bearer {token} {other}"))],
        ),
        (
            "two spaces after the scheme",
            "/orders".into(),
            vec![("authorization", format!("Bearer  {token}"))],
        ),
        (
            "header and query",
            format!("/orders?access_token={token}"),
            vec![bearer(&token)],
        ),
        (
            "header and cookie",
            "/orders".into(),
            vec![bearer(&token), cookie(&format!("session={token}"))],
        ),
        (
            "query and cookie",
            format!("/orders?access_token={token}"),
            vec![cookie(&format!("session={token}"))],
        ),
        (
            "query parameter twice",
            format!("/orders?access_token={token}&access_token={other}"),
            vec![],
        ),
        (
            "cookie twice in one header",
            "/orders".into(),
            vec![cookie(&format!("session={token}; session={other}"))],
        ),
        (
            "cookie twice in two headers",
            "/orders".into(),
            vec![
                cookie(&format!("session={token}")),
                cookie(&format!("session={other}")),
            ],
        ),
    ];

    for (case, uri, headers) in cases {
        let reply = fx.get(&uri, &headers).await;
        assert_rejection(&reply, StatusCode::BAD_REQUEST, "invalid_request", case);
        assert!(
            fx.app.requests().is_empty(),
            "{case}: the app must not see it"
        );
    }

    // Header spellings that a client library would merge, sent byte for byte.
    let head = format!(
        "GET /orders HTTP/1.1\r\nHost: sidecar\r\nAuthorization: Bearer {token}\r\nauthorization: Bearer {token}"
    );
    let raw = raw_request(fx.sidecar.inbound_addr(), &head).await;
    assert_eq!(raw.status, 400, "{}", raw.body);
    assert!(raw.body.contains("invalid_request"), "{}", raw.body);
    assert!(fx.app.requests().is_empty());
}

#[tokio::test]
async fn standard_query_parameter_beside_header_is_ambiguous() {
    // The query source is off, but an app could still read `access_token` from the query.
    let fx = Fixture::start("", "", "").await;
    let token = fx.key.token();
    let reply = fx
        .get(&format!("/orders?access_token={token}"), &[bearer(&token)])
        .await;
    assert_rejection(
        &reply,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "header and query",
    );
    assert!(fx.app.requests().is_empty());

    let reply = fx.get("/orders?page=2", &[bearer(&token)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn query_and_cookie_sources_off_by_default() {
    let fx = Fixture::start("", "", "").await;
    let token = fx.key.token();
    let cases = [
        ("query", format!("/orders?access_token={token}"), vec![]),
        (
            "cookie",
            "/orders".to_owned(),
            vec![("cookie", format!("access_token={token}; session={token}"))],
        ),
    ];
    for (case, uri, headers) in cases {
        let reply = fx.get(&uri, &headers).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{case}: {}",
            reply.body
        );
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer realm="portcullis""#),
            "{case}: a request without a token gets a plain challenge"
        );
        assert!(fx.app.requests().is_empty(), "{case}");
    }
}

#[tokio::test]
async fn configured_sources_carry_the_token() {
    let fx = Fixture::start("", "", ALL_SOURCES).await;
    let token = fx.key.token();

    let reply = fx
        .get(&format!("/orders?page=2&access_token={token}"), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "query: {}", reply.body);
    let cookie = format!("theme=dark; session={token}");
    let reply = fx.get("/orders", &[("cookie", cookie.clone())]).await;
    assert_eq!(reply.status, StatusCode::OK, "cookie: {}", reply.body);

    let requests = fx.app.requests();
    assert_eq!(requests.len(), 2);
    // With forward_authorization on (the default), the request reaches the app unchanged.
    assert_eq!(
        requests[0].uri,
        format!("/orders?page=2&access_token={token}")
    );
    assert_eq!(requests[0].one("x-portcullis-subject"), "peter");
    assert_eq!(requests[1].one("cookie"), cookie);
    assert_eq!(requests[1].one("x-portcullis-subject"), "peter");

    let invalid = tampered_token(&token);
    let reply = fx
        .get(&format!("/orders?access_token={invalid}"), &[])
        .await;
    assert_invalid_token(&reply, "invalid token in the query");
    let reply = fx
        .get("/orders", &[("cookie", format!("session={invalid}"))])
        .await;
    assert_invalid_token(&reply, "invalid token in a cookie");
    assert_eq!(fx.app.requests().len(), 2);
}

/// Returns `token` with its payload replaced, so the signature no longer matches.
fn tampered_token(token: &str) -> String {
    let (header, rest) = token.split_once('.').expect("compact JWS");
    let (_, signature) = rest.split_once('.').expect("compact JWS");
    let payload = common::signing::b64(claims_with(json!({ "sub": "admin" })).to_string());
    format!("{header}.{payload}.{signature}")
}

#[tokio::test]
async fn unforwarded_token_leaves_no_trace() {
    let fx = Fixture::start("", "forward_authorization = false", ALL_SOURCES).await;
    let token = fx.key.token();

    let reply = fx
        .get(&format!("/orders?page=2&access_token={token}&sort=id"), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "query: {}", reply.body);
    let reply = fx
        .get(
            "/orders",
            &[("cookie", format!("theme=dark; session={token}"))],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "cookie: {}", reply.body);
    let reply = fx.get_with_token("/orders?page=3", &token).await;
    assert_eq!(reply.status, StatusCode::OK, "header: {}", reply.body);

    let requests = fx.app.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].uri, "/orders?page=2&sort=id");
    assert_eq!(requests[1].one("cookie"), "theme=dark");
    assert_eq!(requests[2].uri, "/orders?page=3");
    for request in &requests {
        assert!(request.all("authorization").is_empty(), "{request:?}");
        assert_eq!(request.one("x-portcullis-subject"), "peter");
        for (name, value) in &request.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            assert!(!value.contains(&token), "{name} carries the token");
        }
    }
}

/// Log output of every test in this binary, captured by a global subscriber.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || LogSink(Arc::clone(&sink)))
            .init();
        logs
    })
    .clone()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tokens_never_logged_or_counted() {
    let logs = captured_logs();
    let fx = Fixture::start("require_typ = \"at+jwt\"", "", ALL_SOURCES).await;
    let valid = fx.key.token();
    let invalid = tampered_token(&fx.key.token());
    let unknown_kid = fx.key.sign_raw(
        &json!({ "alg": "ES256", "typ": "at+jwt", "kid": "not-published" }).to_string(),
        &claims().to_string(),
    );
    let tokens = [&valid, &invalid, &unknown_kid];

    for token in tokens {
        fx.get_with_token("/orders", token).await;
        fx.get(&format!("/orders?access_token={token}"), &[]).await;
        fx.get("/orders", &[("cookie", format!("session={token}"))])
            .await;
        fx.get(&format!("/orders?access_token={token}"), &[bearer(token)])
            .await;
    }
    let metrics = metrics_text(fx.sidecar.admin_addr()).await;

    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logs.contains("portcullis::access"),
        "the access log must be captured for this check to mean anything"
    );
    for token in tokens {
        let signature = token.rsplit('.').next().expect("signature");
        let payload = token.split('.').nth(1).expect("payload");
        assert!(
            !logs.contains(signature),
            "a token signature is in the logs"
        );
        assert!(!logs.contains(payload), "a token payload is in the logs");
        assert!(!metrics.contains(signature), "a token is in the metrics");
    }
    for reason in ["bad_signature", "unknown_key", "ambiguous_token"] {
        let sample = format!("portcullis_auth_rejections_total{{reason=\"{reason}\"}}");
        let count = common::metric(&metrics, &sample).unwrap_or(0.0);
        assert!(count >= 1.0, "{sample} is {count}");
    }
}

#[tokio::test]
async fn query_token_not_logged_when_app_fails() {
    let logs = captured_logs();
    let key = TestKey::ec("ec-1");
    let server = KeyServer::start(jwks(&[&key])).await;
    let dir = tempfile::tempdir().expect("temporary folder");
    // Nothing listens on the app's port, so forwarding fails and is logged with its error.
    let closed: std::net::SocketAddr = ([127, 0, 0, 1], common::free_port().await).into();
    let body = format!(
        "{}\n{ALL_SOURCES}",
        provider_toml(ISSUER, AUDIENCE, &server, "")
    );
    let sidecar = start(dir.path(), &config_toml(closed, &body)).await;
    let token = key.token();

    let reply = common::get(
        sidecar.inbound_addr(),
        &format!("/orders?access_token={token}"),
        None,
    )
    .await
    .expect("request");

    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.body);
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logs.contains("forwarding to the app failed"),
        "the failure must be logged for this check to mean anything"
    );
    let signature = token.rsplit('.').next().expect("signature");
    assert!(!logs.contains(signature), "the query token is in the logs");
}

#[tokio::test]
async fn route_claim_requirements_enforced() {
    let routes = r#"
[[routes]]
prefix = "/tenants/acme"
claims = [{ claim = "tenant", equals = "acme" }]

[[routes]]
prefix = "/ops"
claims = [{ claim = "role", one_of = ["admin", "ops"] }]

[[routes]]
prefix = "/admin"
scopes = ["foo"]
claims = [{ claim = "groups", contains = "admins" }, { claim = "email_verified", present = true }]

[[routes]]
prefix = "/level"
claims = [{ claim = "level", equals = 3 }]
"#;
    let fx = Fixture::start("", "", routes).await;
    let token = |changes: Value| fx.key.sign(&claims_with(changes));
    let admin = json!({ "groups": ["users", "admins"], "email_verified": false });

    let accepted = [
        ("/tenants/acme", token(json!({ "tenant": "acme" }))),
        ("/ops", token(json!({ "role": "ops" }))),
        ("/ops", token(json!({ "role": "admin" }))),
        ("/admin", token(admin.clone())),
        ("/level", token(json!({ "level": 3 }))),
    ];
    for (path, token) in &accepted {
        let reply = fx.get_with_token(path, token).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    }
    assert_eq!(fx.app.requests().len(), accepted.len());

    let rejected = [
        ("/tenants/acme", "tenant missing", token(json!({}))),
        (
            "/tenants/acme",
            "other tenant",
            token(json!({ "tenant": "umbrella" })),
        ),
        (
            "/tenants/acme",
            "tenant case",
            token(json!({ "tenant": "ACME" })),
        ),
        (
            "/tenants/acme",
            "tenant in an array",
            token(json!({ "tenant": ["acme"] })),
        ),
        ("/ops", "role not listed", token(json!({ "role": "dev" }))),
        ("/ops", "role null", {
            let mut claims = claims();
            claims["role"] = Value::Null;
            fx.key.sign(&claims)
        }),
        (
            "/admin",
            "group missing",
            token(json!({ "groups": ["users"], "email_verified": true })),
        ),
        (
            "/admin",
            "groups a string",
            token(json!({ "groups": "admins", "email_verified": true })),
        ),
        (
            "/admin",
            "email_verified missing",
            token(json!({ "groups": ["admins"] })),
        ),
        (
            "/level",
            "level as a string",
            token(json!({ "level": "3" })),
        ),
        ("/level", "level as a float", token(json!({ "level": 3.5 }))),
    ];
    for (path, case, token) in &rejected {
        let reply = fx.get_with_token(path, token).await;
        assert_rejection(&reply, StatusCode::FORBIDDEN, "insufficient_scope", case);
        assert_eq!(fx.app.requests().len(), accepted.len(), "{case}");
    }

    // Scopes are checked before claims, with the scope named in the challenge.
    let no_scope = token(json!({ "scope": "bar", "groups": ["admins"], "email_verified": true }));
    let reply = fx.get_with_token("/admin", &no_scope).await;
    assert_rejection(&reply, StatusCode::FORBIDDEN, "insufficient_scope", "scope");
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains(r#"scope="foo""#), "{challenge}");
    assert_eq!(fx.app.requests().len(), accepted.len());
}

#[tokio::test]
async fn scopes_read_from_scope_or_scp() {
    let routes = "[[routes]]\nprefix = \"/write\"\nscopes = [\"write\"]\n";
    let fx = Fixture::start("", "", routes).await;
    let token = |changes: Value| fx.key.sign(&claims_with(changes));

    let accepted = [
        (
            "space-separated scope",
            token(json!({ "scope": "read write" })),
        ),
        ("scope array", token(json!({ "scope": ["read", "write"] }))),
        (
            "scp array",
            token(json!({ "scope": null, "scp": ["write"] })),
        ),
        (
            "scp string",
            token(json!({ "scope": null, "scp": "read write" })),
        ),
    ];
    for (case, token) in &accepted {
        let reply = fx.get_with_token("/write", token).await;
        assert_eq!(reply.status, StatusCode::OK, "{case}: {}", reply.body);
    }

    let missing = token(json!({ "scope": "read writes" }));
    let reply = fx.get_with_token("/write", &missing).await;
    assert_rejection(
        &reply,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "no write",
    );
    for (case, scope) in [
        ("scope number", json!(7)),
        ("scope nested", json!([["write"]])),
    ] {
        let reply = fx
            .get_with_token("/write", &token(json!({ "scope": scope })))
            .await;
        assert_invalid_token(&reply, case);
    }
    assert_eq!(fx.app.requests().len(), accepted.len());
}

#[tokio::test]
async fn claim_headers_use_documented_encoding() {
    let headers = r#"
[[claim_headers]]
claim = "groups"
header = "x-portcullis-groups"

[[claim_headers]]
claim = "tenant"
header = "x-portcullis-tenant"

[[claim_headers]]
claim = "ctx"
header = "x-portcullis-ctx"
"#;
    let fx = Fixture::start("", "", headers).await;
    let cases = [
        (
            json!({ "groups": ["users", "admins"], "tenant": "acme", "ctx": { "a": 1 } }),
            ["users,admins", "acme", r#"{"a":1}"#],
        ),
        (
            json!({ "groups": ["a,b", "c"], "tenant": "café\n", "ctx": [1, "x"] }),
            [r#"["a,b","c"]"#, "caf%C3%A9%0A", r#"[1,"x"]"#],
        ),
        (
            json!({ "groups": [], "tenant": "100%", "ctx": true }),
            ["", "100%25", "true"],
        ),
    ];
    for (changes, expected) in &cases {
        let token = fx.key.sign(&claims_with(changes.clone()));
        let reply = fx
            .get(
                "/orders",
                &[bearer(&token), ("x-portcullis-tenant", "spoofed".into())],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{changes}: {}", reply.body);
        let request = fx.app.requests().pop().expect("forwarded");
        assert_eq!(request.one("x-portcullis-groups"), expected[0], "{changes}");
        assert_eq!(request.one("x-portcullis-tenant"), expected[1], "{changes}");
        assert_eq!(request.one("x-portcullis-ctx"), expected[2], "{changes}");
    }

    let token = fx.key.sign(&claims_with(json!({ "tenant": null })));
    fx.get(
        "/orders",
        &[bearer(&token), ("x-portcullis-tenant", "spoofed".into())],
    )
    .await;
    let request = fx.app.requests().pop().expect("forwarded");
    assert!(
        request.all("x-portcullis-tenant").is_empty(),
        "a missing claim sends no header, and the client's copy is removed"
    );
}

#[tokio::test]
async fn required_typ_enforced() {
    let fx = Fixture::start("require_typ = \"at+jwt\"", "", "").await;
    let sign = |typ: Value| {
        let mut header = json!({ "alg": "ES256", "kid": "ec-1" });
        if !typ.is_null() {
            header["typ"] = typ;
        }
        fx.key.sign_raw(&header.to_string(), &claims().to_string())
    };

    for typ in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/At+Jwt",
    ] {
        let reply = fx.get_with_token("/orders", &sign(json!(typ))).await;
        assert_eq!(reply.status, StatusCode::OK, "typ {typ}: {}", reply.body);
    }
    let accepted = fx.app.requests().len();

    for typ in [
        Value::Null,
        json!("JWT"),
        json!("jwt"),
        json!("at+jwt "),
        json!("application/jwt"),
        json!("text/at+jwt"),
        json!(""),
        json!(9),
        json!(["at+jwt"]),
    ] {
        let reply = fx.get_with_token("/orders", &sign(typ.clone())).await;
        assert_invalid_token(&reply, &format!("typ {typ}"));
        assert_eq!(fx.app.requests().len(), accepted, "typ {typ}");
    }
}

#[tokio::test]
async fn typ_ignored_unless_required() {
    let app = App::start().await;
    let key = TestKey::ec("ec-1");
    let server = KeyServer::start(jwks(&[&key])).await;
    let dir = tempfile::tempdir().expect("temporary folder");
    let toml = config_toml(app.addr, &provider_toml(ISSUER, AUDIENCE, &server, ""));
    let sidecar = start(dir.path(), &toml).await;
    let header = json!({ "alg": "ES256", "kid": "ec-1", "typ": "JWT" }).to_string();
    let token = key.sign_raw(&header, &claims().to_string());

    let reply = common::get(sidecar.inbound_addr(), "/orders", Some(&token))
        .await
        .expect("request");

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}
