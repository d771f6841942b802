use std::io::Write;

use super::*;

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn client_toml(secret_hash: &str) -> String {
    format!(
        r#"
[[clients]]
id = "applicationid"
secret_hash = "{secret_hash}"
grants = ["password", "refresh_token"]
scopes = ["foo", "bar"]
audiences = ["orders"]
"#
    )
}

fn invalid_field(error: StsError) -> String {
    match error {
        StsError::InvalidConfig { field, .. } => field,
        other => panic!("expected InvalidConfig, got {other}"),
    }
}

#[test]
fn default_is_book_demo() {
    let config = StsConfig::default();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8443");
    assert_eq!(config.issuer, "https://localhost:8443");
    assert_eq!(config.signing_algorithm, SigningAlgorithm::RS256);
    let client = &config.clients[0];
    assert_eq!(client.id, "applicationid");
    assert_eq!(client.scopes, ["foo", "bar"]);
    assert_eq!(client.audiences, ["orders", "inventory"]);
    assert_eq!(client.token_lifetime_secs, 3600);
    assert!(crate::credentials::verify_secret(
        "applicationsecret",
        &client.secret_hash
    ));
    assert!(crate::credentials::verify_secret(
        "peter123",
        &config.users[0].password_hash
    ));
    assert!(validate(&config).is_ok());
}

#[test]
fn file_fields_and_defaults() {
    let hash = hash_secret("s").unwrap();
    let text = format!(
        r#"
listen = "0.0.0.0:9000"
issuer = "https://sts.example.test"
signing_algorithm = "ES256"
tls = {{ cert = "cert.pem", key = "key.pem" }}
{}
[[users]]
username = "peter"
password_hash = "{hash}"
"#,
        client_toml(&hash)
    );
    let file = write_config(&text);

    let config = StsConfig::from_file(file.path()).unwrap();

    assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(config.signing_algorithm, SigningAlgorithm::ES256);
    assert_eq!(
        config.tls,
        TlsMode::Files {
            cert: "cert.pem".into(),
            key: "key.pem".into()
        }
    );
    assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    assert_eq!(
        config.refresh_token_lifetime_secs,
        DEFAULT_REFRESH_TOKEN_LIFETIME_SECS
    );
    assert_eq!(
        config.clients[0].token_lifetime_secs,
        DEFAULT_TOKEN_LIFETIME_SECS
    );
    assert_eq!(
        config.clients[0].grants,
        [GrantType::Password, GrantType::RefreshToken]
    );
}

#[test]
fn tls_boolean_forms() {
    let hash = hash_secret("s").unwrap();
    for (line, expected) in [
        ("tls = false", TlsMode::Disabled),
        ("tls = true", TlsMode::Generated),
        ("", TlsMode::Generated),
    ] {
        let file = write_config(&format!("{line}\n{}", client_toml(&hash)));
        assert_eq!(
            StsConfig::from_file(file.path()).unwrap().tls,
            expected,
            "{line}"
        );
    }
}

#[test]
fn unknown_field_is_rejected() {
    let hash = hash_secret("s").unwrap();
    let file = write_config(&format!("lisen = \"127.0.0.1:1\"\n{}", client_toml(&hash)));
    let error = StsConfig::from_file(file.path()).unwrap_err();
    assert!(matches!(error, StsError::ParseConfig { .. }), "{error}");
    assert!(error.to_string().contains("lisen"), "{error}");
}

#[test]
fn missing_clients_are_rejected() {
    let file = write_config("listen = \"127.0.0.1:1\"\n");
    let error = StsConfig::from_file(file.path()).unwrap_err();
    assert_eq!(invalid_field(error), "clients");
}

#[test]
fn plaintext_secret_is_rejected() {
    let file = write_config(&client_toml("applicationsecret"));
    let error = StsConfig::from_file(file.path()).unwrap_err();
    assert!(error.to_string().contains("hash-password"), "{error}");
    assert_eq!(invalid_field(error), "clients[0].secret_hash");
}

/// A change that makes a valid configuration invalid.
type Breakage = fn(&mut StsConfig);

#[test]
fn invalid_values_name_their_field() {
    let cases: [(&str, Breakage); 9] = [
        ("issuer", |c| {
            c.issuer = "https://localhost:8443/".to_owned()
        }),
        ("issuer", |c| c.issuer = "localhost:8443".to_owned()),
        ("refresh_token_lifetime_secs", |c| {
            c.refresh_token_lifetime_secs = 0
        }),
        ("clients[0].token_lifetime_secs", |c| {
            c.clients[0].token_lifetime_secs = 86_401
        }),
        ("clients[0].scopes", |c| {
            c.clients[0].scopes.push("a b".to_owned())
        }),
        ("clients[0].audiences", |c| c.clients[0].audiences.clear()),
        ("clients[0].grants", |c| {
            c.clients[0].grants.push(GrantType::Password)
        }),
        ("clients[1].id", |c| c.clients.push(c.clients[0].clone())),
        ("tls_hostnames", |c| {
            c.tls_hostnames.push("not a name".to_owned())
        }),
    ];
    let base = StsConfig::default();
    for (field, change) in cases {
        let mut config = base.clone();
        change(&mut config);
        let error = validate(&config).unwrap_err();
        assert_eq!(invalid_field(error), field);
    }
}
