use std::path::Path;

use super::*;

const MINIMAL: &str = r#"
[inbound]
upstream = "http://127.0.0.1:8081"

[[providers]]
issuer = "https://localhost:8443"
audiences = ["orders"]
jwks_uri = "https://localhost:8443/.well-known/jwks.json"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("/etc/portcullis"))
}

fn error_text(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("config was accepted but should be rejected:\n{text}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let config = parse(MINIMAL).expect("minimal config is valid");
    assert_eq!(config.inbound.listen.to_string(), "0.0.0.0:9443");
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9901");
    assert_eq!(config.inbound.realm, "portcullis");
    assert!(config.inbound.forward_authorization);
    assert!(config.outbound.is_none());
    let provider = &config.providers[0];
    assert_eq!(provider.leeway, Duration::from_secs(60));
    assert_eq!(
        provider.algorithms,
        vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
    );
}

#[test]
fn relative_paths_resolve_against_config_dir() {
    let text =
        format!("{MINIMAL}\n[inbound.tls]\ncert = \"certs/a.pem\"\nkey = \"/abs/key.pem\"\n");
    // TOML allows `[inbound.tls]` after `[[providers]]`: it still extends `inbound`.
    let config = parse(&text).expect("tls paths are valid");
    let tls = config.inbound.tls.expect("tls is set");
    assert_eq!(tls.cert, Path::new("/etc/portcullis/certs/a.pem"));
    assert_eq!(tls.key, Path::new("/abs/key.pem"));
}

#[test]
fn unknown_field_is_rejected() {
    let message = error_text(&MINIMAL.replace("audiences", "audience"));
    assert!(message.contains("audience"), "{message}");
}

#[test]
fn hmac_algorithm_is_rejected() {
    let text = format!("{MINIMAL}algorithms = [\"HS256\"]\n");
    let message = error_text(&text);
    assert!(message.contains("providers[0].algorithms"), "{message}");
    assert!(message.contains("HS256"), "{message}");
}

#[test]
fn route_needs_exactly_one_matcher() {
    let text = format!("{MINIMAL}\n[[routes]]\npath = \"/a\"\nprefix = \"/b\"\n");
    assert!(error_text(&text).contains("routes[0].path"));
    let text = format!("{MINIMAL}\n[[routes]]\nscopes = [\"foo\"]\n");
    assert!(error_text(&text).contains("routes[0].path"));
}

#[test]
fn prefix_route_is_normalised() {
    let text = format!(
        "{MINIMAL}\n[[routes]]\nprefix = \"/orders/\"\nmethods = [\"post\"]\nscopes = [\"foo\"]\n"
    );
    let config = parse(&text).expect("route is valid");
    assert_eq!(config.routes[0].path, PathMatch::Prefix("/orders".into()));
    assert_eq!(config.routes[0].methods, vec![Method::POST]);
}

#[test]
fn open_route_cannot_require_scopes() {
    let text = format!(
        "{MINIMAL}\n[[routes]]\npath = \"/healthz\"\nauth = \"none\"\nscopes = [\"foo\"]\n"
    );
    assert!(error_text(&text).contains("routes[0].scopes"));
}

#[test]
fn claim_header_needs_identity_prefix() {
    let text =
        format!("{MINIMAL}\n[[claim_headers]]\nclaim = \"client_id\"\nheader = \"x-client\"\n");
    let message = error_text(&text);
    assert!(message.contains("claim_headers[0].header"), "{message}");
    assert!(message.contains("x-portcullis-"), "{message}");
}

#[test]
fn outbound_must_listen_on_loopback() {
    let text = format!("{MINIMAL}\n[outbound]\nlisten = \"0.0.0.0:15001\"\n");
    assert!(error_text(&text).contains("outbound.listen"));
}

#[test]
fn upstream_must_be_plain_http() {
    let message = error_text(&MINIMAL.replace("http://127.0.0.1:8081", "https://127.0.0.1:8081"));
    assert!(message.contains("inbound.upstream"), "{message}");
}

#[test]
fn env_overrides_listen_addresses() {
    let raw: RawConfig = toml::from_str(MINIMAL).expect("parses");
    let raw = raw
        .with_env_overrides(|name| match name {
            "PORTCULLIS_INBOUND_LISTEN" => Some("127.0.0.1:19443".into()),
            _ => None,
        })
        .expect("override applies");
    let config = raw.validate(Path::new("/")).expect("valid");
    assert_eq!(config.inbound.listen.to_string(), "127.0.0.1:19443");
}

#[test]
fn outbound_env_override_needs_section() {
    let raw: RawConfig = toml::from_str(MINIMAL).expect("parses");
    let result = raw.with_env_overrides(|name| {
        (name == "PORTCULLIS_OUTBOUND_LISTEN").then(|| "127.0.0.1:1".to_string())
    });
    assert!(result.is_err());
}

#[test]
fn worker_threads_range_checked() {
    assert_eq!(parse(MINIMAL).expect("valid").worker_threads, None);
    let one = parse(&format!("worker_threads = 1\n{MINIMAL}")).expect("1 is valid");
    assert_eq!(one.worker_threads, Some(1));
    for bad in ["0", "257"] {
        let message = error_text(&format!("worker_threads = {bad}\n{MINIMAL}"));
        assert!(
            message.contains("worker_threads") && message.contains(bad),
            "{message}"
        );
    }
}
