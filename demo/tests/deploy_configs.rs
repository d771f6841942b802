//! The configuration files that Docker Compose (`deploy/compose/`) and Kubernetes
//! (`k8s/base/config/`) mount, parsed and validated so they cannot drift from the
//! configuration format. Sidecar files go through `Config::from_toml`, token service files
//! through `StsConfig::from_file`, and the demo credentials are checked against their hashes.

use std::path::{Path, PathBuf};

use argon2::{Argon2, PasswordHash, PasswordVerifier};

use portcullis::config::Config;
use portcullis_sts::StsConfig;

/// Folders holding one deployment's configuration files each.
const CONFIG_DIRS: [&str; 2] = ["deploy/compose", "k8s/base/config"];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the demo crate sits in the repository root")
        .to_owned()
}

fn sidecar(dir: &str, name: &str) -> Config {
    let path = repository().join(dir).join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    Config::from_toml(&text, path.parent().expect("folder"))
        .unwrap_or_else(|err| panic!("{} is invalid: {err}", path.display()))
}

fn sts(dir: &str) -> StsConfig {
    let path = repository().join(dir).join("sts.toml");
    StsConfig::from_file(&path).unwrap_or_else(|err| panic!("{} is invalid: {err}", path.display()))
}

#[test]
fn every_toml_file_is_checked() {
    for dir in CONFIG_DIRS {
        let mut names: Vec<String> = std::fs::read_dir(repository().join(dir))
            .expect("config folder")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".toml"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["inventory.toml", "orders.toml", "sts.toml"],
            "{dir}"
        );
    }
}

#[test]
fn orders_sidecars_valid() {
    for dir in CONFIG_DIRS {
        let config = sidecar(dir, "orders.toml");
        let tls = config.inbound.tls.as_ref().expect("inbound TLS");
        assert!(
            tls.client_ca.is_none(),
            "{dir}: clients need no certificate"
        );
        assert_eq!(config.inbound.listen.port(), 9443, "{dir}");
        assert_eq!(
            config.inbound.upstream.to_string(),
            "http://127.0.0.1:8081/",
            "{dir}"
        );

        let outbound = config.outbound.as_ref().expect("outbound listener");
        assert!(outbound.listen.ip().is_loopback(), "{dir}");
        assert_eq!(outbound.services.len(), 1, "{dir}");
        assert_eq!(outbound.services[0].name, "inventory", "{dir}");
        assert_eq!(
            outbound.services[0].upstream.to_string(),
            "https://inventory:10443/",
            "{dir}"
        );
        assert!(config.admin.listen.ip().is_loopback(), "{dir}");
    }
}

#[test]
fn inventory_sidecars_require_client_certificates() {
    for dir in CONFIG_DIRS {
        let config = sidecar(dir, "inventory.toml");
        let tls = config.inbound.tls.as_ref().expect("inbound TLS");
        assert!(tls.client_ca.is_some(), "{dir}: mutual TLS");
        assert_eq!(config.inbound.listen.port(), 10443, "{dir}");
        assert_eq!(
            config.inbound.upstream.to_string(),
            "http://127.0.0.1:8082/",
            "{dir}"
        );
        assert!(config.outbound.is_none(), "{dir}");
    }
}

#[test]
fn sidecars_trust_their_token_service() {
    for dir in CONFIG_DIRS {
        let issuer = sts(dir).issuer;
        for (name, audience) in [("orders.toml", "orders"), ("inventory.toml", "inventory")] {
            let config = sidecar(dir, name);
            assert_eq!(config.providers.len(), 1, "{dir}/{name}");
            let provider = &config.providers[0];
            assert_eq!(provider.issuer, issuer, "{dir}/{name}");
            assert_eq!(provider.audiences, [audience], "{dir}/{name}");
        }
    }
}

#[test]
fn sts_files_accept_book_credentials() {
    for dir in CONFIG_DIRS {
        let config = sts(dir);
        assert!(
            !config.listen.ip().is_loopback(),
            "{dir}: reachable from other containers"
        );

        let client = config
            .clients
            .iter()
            .find(|client| client.id == "applicationid")
            .unwrap_or_else(|| panic!("{dir}: the book's client is missing"));
        assert!(verifies(&client.secret_hash, "applicationsecret"), "{dir}");
        assert!(!verifies(&client.secret_hash, "wrong secret"), "{dir}");

        let user = config
            .users
            .iter()
            .find(|user| user.username == "peter")
            .unwrap_or_else(|| panic!("{dir}: the book's user is missing"));
        assert!(verifies(&user.password_hash, "peter123"), "{dir}");
    }
}

/// Runs the documented key command, `portcullis-sts rotate-key --config FILE --data-dir DIR`,
/// as the library call it wraps, and checks it writes the files the Secret is made from.
#[test]
fn sts_key_command_writes_secret_files() {
    let data_dir = tempfile::tempdir().expect("temporary folder");
    let mut config = sts("k8s/base/config");
    config.data_dir = data_dir.path().to_owned();

    let kid = portcullis_sts::rotate_key(&config).expect("key generated");

    let keys = data_dir.path().join("keys");
    assert!(keys.join("index.json").is_file());
    assert!(keys.join(format!("{kid}.pem")).is_file());
}

fn verifies(hash: &str, secret: &str) -> bool {
    let parsed = PasswordHash::new(hash).expect("a PHC hash string");
    Argon2::default()
        .verify_password(secret.as_bytes(), &parsed)
        .is_ok()
}
