//! Key set behaviour of a running sidecar: unusable JWKS entries, failed and empty
//! refreshes, maximum staleness, key removal (also for cached tokens), floods of unknown
//! `kid` values, OpenID Connect discovery and JWKS file reloads. The key server counts every
//! request, so fetch bounds are checked where the fetches arrive. Everything runs on
//! 127.0.0.1; tests wait for states and never assert on durations.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

use common::signing::{b64, jwks, TestKey};
use common::tokens::{
    assert_invalid_token, assert_rejection, claims, config_toml, provider_toml, start,
    start_unready, KeyServer, SignDefaultClaims, AUDIENCE, ISSUER,
};
use common::{get, metric, metrics_text, App, Reply, WAIT_LIMIT};
use portcullis::RunningSidecar;

/// A sidecar in front of a recording app, with one provider served by `server`.
struct Fixture {
    app: App,
    sidecar: RunningSidecar,
    server: KeyServer,
    _dir: TempDir,
}

impl Fixture {
    /// Starts a sidecar whose provider serves `document` and has `provider_extra` lines.
    /// Waits for readiness when `ready` is set.
    async fn start(document: Value, provider_extra: &str, ready: bool) -> Fixture {
        let app = App::start().await;
        let server = KeyServer::start(document).await;
        let dir = tempfile::tempdir().expect("temporary folder");
        let toml = config_toml(
            app.addr,
            &provider_toml(ISSUER, AUDIENCE, &server, provider_extra),
        );
        let sidecar = if ready {
            start(dir.path(), &toml).await
        } else {
            start_unready(dir.path(), &toml).await
        };
        Fixture {
            app,
            sidecar,
            server,
            _dir: dir,
        }
    }

    async fn send(&self, token: &str) -> Reply {
        get(self.sidecar.inbound_addr(), "/orders", Some(token))
            .await
            .expect("request to the sidecar")
    }

    async fn metrics(&self) -> String {
        metrics_text(self.sidecar.admin_addr()).await
    }
}

async fn readiness(admin: SocketAddr) -> StatusCode {
    get(admin, "/readyz", None).await.expect("readyz").status
}

/// Polls `/readyz` until it returns `status`.
async fn wait_for_readiness(admin: SocketAddr, status: StatusCode) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while readiness(admin).await != status {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never returned {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs a token with `key` under a header naming `kid`, which the JWKS may not publish.
fn token_with_kid(key: &TestKey, kid: &str) -> String {
    let header = json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid }).to_string();
    key.sign_raw(&header, &claims().to_string())
}

/// JWKS entries the sidecar cannot use, each for a different reason.
fn unusable_entries() -> Vec<Value> {
    let ec = TestKey::ec("enc-key").jwk;
    let mut for_encryption = ec.clone();
    for_encryption["use"] = json!("enc");
    let mut sign_only = ec.clone();
    sign_only["kid"] = json!("sign-only");
    sign_only["key_ops"] = json!(["sign"]);
    let mut hmac_alg = ec;
    hmac_alg["kid"] = json!("hmac-alg");
    hmac_alg["alg"] = json!("HS256");
    vec![
        json!({ "kty": "oct", "kid": "secret", "k": b64("secret") }),
        json!({ "kty": "RSA", "kid": "short-rsa", "n": b64([0xc5; 128]), "e": "AQAB" }),
        json!({ "kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA" }),
        json!({ "kty": "EC", "kid": "bad-x", "crv": "P-256", "x": "not base64!", "y": "AA" }),
        for_encryption,
        sign_only,
        hmac_alg,
        json!("not an object"),
        json!(7),
    ]
}

#[tokio::test]
async fn unusable_entries_skipped_alone() {
    let good = TestKey::ec("good");
    let mut keys = unusable_entries();
    keys.push(good.jwk.clone());
    let fx = Fixture::start(json!({ "keys": keys }), "", true).await;

    let reply = fx.send(&good.token()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let keys_gauge = format!("portcullis_jwks_keys{{issuer=\"{ISSUER}\"}}");
    assert_eq!(metric(&fx.metrics().await, &keys_gauge), Some(1.0));

    for kid in ["enc-key", "sign-only", "hmac-alg", "secret"] {
        let reply = fx.send(&token_with_kid(&good, kid)).await;
        assert_invalid_token(&reply, &format!("kid of the skipped key {kid}"));
    }
    assert_eq!(fx.app.requests().len(), 1);
}

#[tokio::test]
async fn no_usable_key_leaves_sidecar_unready() {
    let key = TestKey::ec("ec-1");
    let fx = Fixture::start(json!({ "keys": unusable_entries() }), "", false).await;
    // Two requests mean the first fetch finished and a retry followed.
    fx.server.wait_for_jwks_hits(2).await;

    assert_eq!(
        readiness(fx.sidecar.admin_addr()).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let reply = fx.send(&key.token()).await;
    assert_rejection(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "no usable key",
    );
    assert!(reply.header("retry-after").is_some());
    assert!(fx.app.requests().is_empty());

    fx.server.set_jwks(jwks(&[&key]));
    wait_for_readiness(fx.sidecar.admin_addr(), StatusCode::OK).await;
    let reply = fx.send(&key.token()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn refresh_without_usable_key_keeps_last_set() {
    let key = TestKey::ec("ec-1");
    // A cooldown of 0 lets every unknown kid trigger a fetch, so the test controls refreshes.
    let fx = Fixture::start(jwks(&[&key]), "unknown_kid_cooldown_secs = 0", true).await;
    assert_eq!(fx.send(&key.token()).await.status, StatusCode::OK);

    for (case, change) in [("no usable key", true), ("server error", false)] {
        let before = fx.server.hits("/jwks.json");
        if change {
            fx.server.set_jwks(json!({ "keys": unusable_entries() }));
        } else {
            fx.server.set_failing(true);
        }
        let reply = fx.send(&token_with_kid(&key, "rotated")).await;
        assert_invalid_token(&reply, case);
        assert_eq!(
            fx.server.hits("/jwks.json"),
            before + 1,
            "{case}: one refetch"
        );

        let reply = fx.send(&key.token()).await;
        assert_eq!(reply.status, StatusCode::OK, "{case}: {}", reply.body);
        assert_eq!(
            readiness(fx.sidecar.admin_addr()).await,
            StatusCode::OK,
            "{case}"
        );
    }
    assert_eq!(fx.app.requests().len(), 3);
}

#[tokio::test]
async fn failed_refreshes_fail_closed_after_max_staleness() {
    let key = TestKey::ec("ec-1");
    let fx = Fixture::start(
        jwks(&[&key]),
        "refresh_interval_secs = 1\nmax_key_staleness_secs = 8",
        true,
    )
    .await;
    let admin = fx.sidecar.admin_addr();
    assert_eq!(fx.send(&key.token()).await.status, StatusCode::OK);

    fx.server.set_failing(true);
    let failing_from = fx.server.hits("/jwks.json");
    fx.server.wait_for_jwks_hits(failing_from + 1).await;
    // The keys were confirmed at most one refresh interval ago, well within 8 seconds.
    let reply = fx.send(&key.token()).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "last good keys: {}",
        reply.body
    );

    wait_for_readiness(admin, StatusCode::SERVICE_UNAVAILABLE).await;
    let reply = fx.send(&key.token()).await;
    assert_rejection(
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "stale keys",
    );
    assert_eq!(
        fx.app.requests().len(),
        2,
        "stale keys must not let a token through"
    );
    let retries = fx.server.hits("/jwks.json") - failing_from;
    assert!(
        retries >= 3,
        "only {retries} fetches while failing; expected retries"
    );
    // The refresh task sets the gauge at its next failed retry, within one backoff step.
    let keys_gauge = format!("portcullis_jwks_keys{{issuer=\"{ISSUER}\"}}");
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while metric(&fx.metrics().await, &keys_gauge) != Some(0.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{keys_gauge} never reached 0"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    fx.server.set_failing(false);
    wait_for_readiness(admin, StatusCode::OK).await;
    let reply = fx.send(&key.token()).await;
    assert_eq!(reply.status, StatusCode::OK, "recovered: {}", reply.body);
}

#[tokio::test]
async fn removed_key_rejected_at_once_even_cached() {
    let old = TestKey::ec("old");
    let new = TestKey::ed25519("new");
    let fx = Fixture::start(jwks(&[&old]), "", true).await;
    let old_token = old.token();
    let hits = "portcullis_token_cache_hits_total";
    let misses = "portcullis_token_cache_misses_total";

    assert_eq!(fx.send(&old_token).await.status, StatusCode::OK);
    assert_eq!(fx.send(&old_token).await.status, StatusCode::OK);
    let metrics = fx.metrics().await;
    assert_eq!(
        metric(&metrics, hits),
        Some(1.0),
        "the second request is a cache hit"
    );
    assert_eq!(metric(&metrics, misses), Some(1.0));

    // The issuer rotates: the new set no longer contains the old key. The first token with
    // the new kid makes the sidecar refetch.
    fx.server.set_jwks(jwks(&[&new]));
    let reply = fx.send(&new.token()).await;
    assert_eq!(reply.status, StatusCode::OK, "new key: {}", reply.body);

    let reply = fx.send(&old_token).await;
    assert_invalid_token(&reply, "cached token of a removed key");
    assert_eq!(fx.app.requests().len(), 3);
    assert_eq!(
        metric(&fx.metrics().await, hits),
        Some(1.0),
        "the removed key's token must not be served from the cache"
    );
}

#[tokio::test]
async fn random_kid_flood_fetches_once() {
    let key = TestKey::ec("ec-1");
    let fx = Fixture::start(jwks(&[&key]), "unknown_kid_cooldown_secs = 30", true).await;
    let before = fx.server.total_hits();
    let tokens: Vec<String> = (0..300)
        .map(|_| token_with_kid(&key, &format!("kid-{}", rand::random::<u64>())))
        .collect();

    // 300 requests, 30 at a time: bounded, and ends on its own.
    for chunk in tokens.chunks(30) {
        let replies =
            futures_util::future::join_all(chunk.iter().map(|token| fx.send(token))).await;
        for reply in &replies {
            assert_invalid_token(reply, "random kid");
        }
    }

    let fetches = fx.server.total_hits() - before;
    assert!(
        fetches <= 1,
        "300 unknown kids within one cooldown caused {fetches} fetches"
    );
    assert!(fx.app.requests().is_empty());
}

#[tokio::test]
async fn discovery_finds_the_jwks() {
    let app = App::start().await;
    let dir = tempfile::tempdir().expect("temporary folder");
    let key = TestKey::ec("ec-1");
    let server = KeyServer::start(jwks(&[&key])).await;
    let issuer = server.base();
    server.set_discovery(json!({ "issuer": issuer, "jwks_uri": server.jwks_uri() }));
    let body = format!("[[providers]]\nissuer = {issuer:?}\naudiences = [\"orders\"]\n");
    let sidecar = start(dir.path(), &config_toml(app.addr, &body)).await;

    let mut claims = claims();
    claims["iss"] = json!(issuer);
    let reply = get(sidecar.inbound_addr(), "/orders", Some(&key.sign(&claims)))
        .await
        .expect("request");

    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(server.hits("/.well-known/openid-configuration") >= 1);
    assert!(server.hits("/jwks.json") >= 1);
}

#[tokio::test]
async fn discovery_with_other_issuer_stays_unready() {
    let app = App::start().await;
    let dir = tempfile::tempdir().expect("temporary folder");
    let key = TestKey::ec("ec-1");
    let server = KeyServer::start(jwks(&[&key])).await;
    let issuer = server.base();
    // The document claims another issuer, so its jwks_uri must not be trusted.
    server.set_discovery(json!({ "issuer": format!("{issuer}/"), "jwks_uri": server.jwks_uri() }));
    let body = format!("[[providers]]\nissuer = {issuer:?}\naudiences = [\"orders\"]\n");
    let sidecar = start_unready(dir.path(), &config_toml(app.addr, &body)).await;

    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while server.hits("/.well-known/openid-configuration") < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "discovery never retried"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(
        readiness(sidecar.admin_addr()).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        server.hits("/jwks.json"),
        0,
        "the jwks_uri must not be fetched"
    );
    let mut claims = claims();
    claims["iss"] = json!(issuer);
    let reply = get(sidecar.inbound_addr(), "/orders", Some(&key.sign(&claims)))
        .await
        .expect("request");
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert!(app.requests().is_empty());
}

#[tokio::test]
async fn jwks_file_reloaded_on_change() {
    let app = App::start().await;
    let dir = tempfile::tempdir().expect("temporary folder");
    let old = TestKey::ec("old");
    let new = TestKey::ec("new");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&old]).to_string()).expect("write JWKS");
    // The default refresh interval (300 s) is far away, so only a change can cause a reload.
    let body = format!(
        "[[providers]]\nissuer = {ISSUER:?}\naudiences = [{AUDIENCE:?}]\njwks_file = {path:?}\n"
    );
    let sidecar = start(dir.path(), &config_toml(app.addr, &body)).await;
    let send = |token: String| {
        let addr = sidecar.inbound_addr();
        async move { get(addr, "/orders", Some(&token)).await.expect("request") }
    };
    let loads = format!("portcullis_jwks_fetches_total{{issuer=\"{ISSUER}\",result=\"ok\"}}");
    assert_eq!(send(old.token()).await.status, StatusCode::OK);
    let loaded = metric(&metrics_text(sidecar.admin_addr()).await, &loads).unwrap_or(0.0);

    // Replace the file by rename, as Kubernetes does for a mounted ConfigMap.
    let staged = dir.path().join("jwks.json.new");
    std::fs::write(&staged, jwks(&[&new]).to_string()).expect("write JWKS");
    std::fs::rename(&staged, &path).expect("rename");
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while metric(&metrics_text(sidecar.admin_addr()).await, &loads).unwrap_or(0.0) <= loaded {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the changed file was not read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let reply = send(new.token()).await;
    assert_eq!(reply.status, StatusCode::OK, "new key: {}", reply.body);
    let reply = send(old.token()).await;
    assert_invalid_token(&reply, "key removed from the file");
    assert_eq!(app.requests().len(), 2);
}

#[tokio::test]
async fn full_cache_stops_caching_new_tokens() {
    let app = App::start().await;
    let dir = tempfile::tempdir().expect("temporary folder");
    let key = TestKey::ec("ec-1");
    let server = KeyServer::start(jwks(&[&key])).await;
    let body = format!(
        "{}\n[cache]\nmax_entries = 3\n",
        provider_toml(ISSUER, AUDIENCE, &server, "")
    );
    let sidecar = start(dir.path(), &config_toml(app.addr, &body)).await;
    // Ten distinct valid tokens, as a flood of fresh logins would bring.
    let tokens: Vec<String> = (0..10).map(|_| key.token()).collect();

    for round in 0..2 {
        for token in &tokens {
            let reply = get(sidecar.inbound_addr(), "/orders", Some(token))
                .await
                .expect("request");
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "round {round}: {}",
                reply.body
            );
        }
    }

    // Only the first three tokens found room, so only they hit in the second round; the
    // others were verified again instead of evicting live entries.
    let metrics = metrics_text(sidecar.admin_addr()).await;
    assert_eq!(
        metric(&metrics, "portcullis_token_cache_hits_total"),
        Some(3.0)
    );
    assert_eq!(
        metric(&metrics, "portcullis_token_cache_misses_total"),
        Some(17.0)
    );
    assert_eq!(app.requests().len(), 20);
}
