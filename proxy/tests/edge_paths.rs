//! Path rules that cannot be bypassed: raw requests whose path, target form, `Host` or
//! forwarding headers try to reach a protected route through the public `/healthz`, against
//! a running sidecar and a recording app on 127.0.0.1.

mod common;

use common::raw::EdgeApp;
use common::{raw_request, signer, Spec};
use portcullis::RunningSidecar;

/// Routes added to the test table: only `/healthz` (exactly) is public besides `/public`.
const HEALTHZ_ROUTE: &str = "\n[[routes]]\npath = \"/healthz\"\nauth = \"none\"\n";

async fn start(case_insensitive: bool) -> (EdgeApp, RunningSidecar, tempfile::TempDir) {
    let app = EdgeApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new(dir.path(), app.addr);
    spec.extra = HEALTHZ_ROUTE.into();
    let mut text = spec.to_toml();
    if case_insensitive {
        text = text.replace("[inbound]\n", "[inbound]\ncase_insensitive_routes = true\n");
    }
    let config = portcullis::config::Config::from_toml(&text, dir.path()).unwrap();
    let sidecar = portcullis::start(config).await.unwrap();
    common::wait_ready(sidecar.admin_addr()).await;
    (app, sidecar, dir)
}

fn get(target: &str, headers: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: orders\r\n{headers}")
}

/// Returns the inbound listener's count of requests rejected for `reason`.
async fn rejections(sidecar: &RunningSidecar, reason: &str) -> f64 {
    let sample =
        format!(r#"portcullis_request_rejections_total{{listener="inbound",reason="{reason}"}}"#);
    common::metric_value(sidecar.admin_addr(), &sample).await
}

#[tokio::test]
async fn public_path_reaches_app() {
    let (app, sidecar, _dir) = start(false).await;

    let reply = raw_request(sidecar.inbound_addr(), &get("/healthz", "")).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.targets(), vec!["/healthz"]);
}

#[tokio::test]
async fn bypass_attempts_never_reach_app() {
    let (app, sidecar, _dir) = start(false).await;
    let cases = [
        (get("/healthz/../admin", ""), 400),
        (get("//healthz/../admin", ""), 400),
        (get("/healthz/%2e%2e/admin", ""), 400),
        (get("/healthz/%2E%2E/admin", ""), 400),
        (get("/healthz%2f..%2fadmin", ""), 400),
        (get("/healthz%2F..%2Fadmin", ""), 400),
        (get("/healthz/..%2fadmin", ""), 400),
        (get("/healthz\\..\\admin", ""), 400),
        (get("/healthz;/../admin", ""), 400),
        (get("/healthz%3b/admin", ""), 400),
        (get("/healthz%252f..%252fadmin", ""), 400),
        (get("/HEALTHZ", ""), 401),
        (get("/Healthz", ""), 401),
        (get("/healthz.", ""), 401),
        (get("/healthz/", ""), 401),
        (get("/healthzfoo", ""), 401),
        (get("/healthz/admin", ""), 401),
        (get("/admin?x=/healthz", ""), 401),
        (get("/admin?/healthz", ""), 401),
        (get("/admin", "X-Forwarded-Uri: /healthz\r\n"), 401),
        (get("/admin", "X-Original-URL: /healthz\r\n"), 401),
        (get("/admin", "X-Rewrite-URL: /healthz\r\n"), 401),
        (get("/admin", "X-Original-URI: /healthz\r\n"), 401),
        (get("/admin", "X-Envoy-Original-Path: /healthz\r\n"), 401),
    ];

    for (request, status) in &cases {
        let reply = raw_request(sidecar.inbound_addr(), request).await;
        let line = request.lines().next().unwrap_or_default();
        assert_eq!(reply.status, *status, "{line}: {}", reply.body);
    }
    let unsafe_paths = cases.iter().filter(|(_, status)| *status == 400).count();
    assert_eq!(
        rejections(&sidecar, "unsafe_path").await,
        unsafe_paths as f64
    );
    assert!(
        app.requests().is_empty(),
        "requests reached the app: {:?}",
        app.targets()
    );
}

#[tokio::test]
async fn rejection_names_the_problem() {
    let (_app, sidecar, _dir) = start(false).await;

    let reply = raw_request(sidecar.inbound_addr(), &get("/healthz/%2e%2e/admin", "")).await;

    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("invalid_request"), "{}", reply.body);
    assert!(reply.body.contains("%2e"), "{}", reply.body);
}

#[tokio::test]
async fn app_receives_normalised_path() {
    let (app, sidecar, _dir) = start(false).await;

    let public = raw_request(sidecar.inbound_addr(), &get("/%68ealth%7a?a=%2F", "")).await;
    let mixed_escape = raw_request(sidecar.inbound_addr(), &get("/public/caf%c3%a9", "")).await;

    assert_eq!(public.status, 200, "{}", public.body);
    assert_eq!(mixed_escape.status, 200, "{}", mixed_escape.body);
    assert_eq!(app.targets(), vec!["/healthz?a=%2F", "/public/caf%C3%A9"]);
}

#[tokio::test]
async fn encoded_route_cannot_skip_scope() {
    let (app, sidecar, _dir) = start(false).await;
    let token = signer().token();
    let auth = format!("Authorization: Bearer {token}\r\n");

    // `/reports` needs the `reports:read` scope, which the token lacks.
    let encoded = raw_request(sidecar.inbound_addr(), &get("/%72eports/daily", &auth)).await;

    assert_eq!(encoded.status, 403, "{}", encoded.body);
    assert!(app.requests().is_empty());
}

#[tokio::test]
async fn override_headers_removed_before_app() {
    let (app, sidecar, _dir) = start(false).await;
    let headers = "X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-Forwarded-Uri: /admin\r\n\
                   X-HTTP-Method-Override: DELETE\r\nX-Kept: 1\r\n";

    let reply = raw_request(sidecar.inbound_addr(), &get("/healthz", headers)).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let request = &app.requests()[0];
    for name in [
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-uri",
        "x-http-method-override",
    ] {
        assert!(
            request.headers.get(name).is_none(),
            "{name} reached the app"
        );
    }
    assert_eq!(request.headers["x-kept"], "1");
}

#[tokio::test]
async fn absolute_form_becomes_origin_form() {
    let (app, sidecar, _dir) = start(false).await;

    let reply = raw_request(
        sidecar.inbound_addr(),
        "GET http://orders/healthz?q=1 HTTP/1.1\r\nHost: orders\r\n",
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let request = &app.requests()[0];
    assert_eq!(request.target, "/healthz?q=1");
    assert_eq!(request.headers["host"], "orders");
}

#[tokio::test]
async fn host_problems_get_400() {
    let (app, sidecar, _dir) = start(false).await;
    let cases = [
        (
            "host_mismatch",
            "GET http://admin.internal/healthz HTTP/1.1\r\nHost: orders\r\n",
        ),
        (
            "host_mismatch",
            "GET http://orders:8080/healthz HTTP/1.1\r\nHost: orders\r\n",
        ),
        (
            "userinfo",
            "GET http://user@orders/healthz HTTP/1.1\r\nHost: orders\r\n",
        ),
        (
            "multiple_hosts",
            "GET /healthz HTTP/1.1\r\nHost: orders\r\nHost: admin\r\n",
        ),
        (
            "multiple_hosts",
            "GET /healthz HTTP/1.1\r\nHost: orders\r\nHost: orders\r\n",
        ),
        ("missing_host", "GET /healthz HTTP/1.1\r\n"),
        (
            "connect_method",
            "CONNECT orders:443 HTTP/1.1\r\nHost: orders:443\r\n",
        ),
    ];

    for (reason, request) in cases {
        let before = rejections(&sidecar, reason).await;
        let reply = raw_request(sidecar.inbound_addr(), request).await;
        let line = request.lines().next().unwrap_or_default();
        assert_eq!(reply.status, 400, "{line}: {}", reply.body);
        let counted = rejections(&sidecar, reason).await - before;
        assert_eq!(counted, 1.0, "{line}: rejections counted for {reason}");
    }
    assert!(app.requests().is_empty(), "{:?}", app.targets());
}

#[tokio::test]
async fn http2_authority_must_match_host() {
    let (app, sidecar, _dir) = start(false).await;
    let stream = tokio::net::TcpStream::connect(sidecar.inbound_addr())
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);

    let request = http::Request::get("http://orders/healthz")
        .header("host", "admin.internal")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();

    assert_eq!(response.status(), 400);
    assert!(app.requests().is_empty());
}

#[tokio::test]
async fn case_insensitive_routes_when_declared() {
    let (app, sidecar, _dir) = start(true).await;

    let reply = raw_request(sidecar.inbound_addr(), &get("/HEALTHZ", "")).await;
    let dotted = raw_request(sidecar.inbound_addr(), &get("/HEALTHZ/../admin", "")).await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(dotted.status, 400, "{}", dotted.body);
    // The app gets the path as sent; it is the one that matches case-insensitively.
    assert_eq!(app.targets(), vec!["/HEALTHZ"]);
}
