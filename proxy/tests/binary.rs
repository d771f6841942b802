//! The `portcullis` binary as an operator runs it: `check-config` on good and bad files, and
//! a SIGTERM that lets an in-flight request finish before the process exits 0.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use http::StatusCode;

use common::{get, pki, signer, wait_ready, App, Spec};

const BINARY: &str = env!("CARGO_BIN_EXE_portcullis");

#[tokio::test]
async fn check_config_accepts_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let path = Spec::new(dir.path(), "127.0.0.1:8081".parse().unwrap())
        .with_tls(&pki, true)
        .write("sidecar.toml");

    let output = Command::new(BINARY)
        .args(["check-config".as_ref(), path.as_os_str()])
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("valid: inbound 127.0.0.1:0 (mutual TLS)"),
        "{stdout}"
    );
    assert!(stdout.contains("1 provider"), "{stdout}");
}

#[tokio::test]
async fn check_config_rejects_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = Spec::new(dir.path(), "127.0.0.1:8081".parse().unwrap())
        .to_toml()
        .replace(r#"algorithms = ["RS256"]"#, r#"algorithms = ["HS256"]"#);
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();

    let output = Command::new(BINARY)
        .args(["check-config".as_ref(), path.as_os_str()])
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stderr.contains("providers[0].algorithms"), "{stderr}");
    assert!(stderr.contains("HS256"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn check_config_rejects_missing_tls_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new(dir.path(), "127.0.0.1:8081".parse().unwrap());
    spec.extra = "\n[inbound.tls]\ncert = \"missing.pem\"\nkey = \"missing-key.pem\"\n".into();
    let path = spec.write("sidecar.toml");

    let output = Command::new(BINARY)
        .args(["check-config".as_ref(), path.as_os_str()])
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stderr.contains("missing.pem"), "{stderr}");
}

/// A running `portcullis` process, killed on drop so a failing test leaves none behind.
struct Sidecar(Child);

impl Drop for Sidecar {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Sidecar {
    /// Waits for the process to exit, at most [`common::WAIT_LIMIT`].
    async fn wait(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + common::WAIT_LIMIT;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the sidecar did not exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs the binary with a config file, logging to `<dir>/sidecar.log`.
fn spawn_sidecar(dir: &Path, config: &Path) -> Sidecar {
    let log = File::create(dir.join("sidecar.log")).unwrap();
    let child = Command::new(BINARY)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Sidecar(child)
}

#[tokio::test]
async fn sigterm_drains_in_flight_request() {
    let app = App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new(dir.path(), app.addr);
    let inbound = format!("127.0.0.1:{}", common::free_port().await);
    let admin = format!("127.0.0.1:{}", common::free_port().await);
    spec.inbound_listen = inbound.clone();
    spec.admin_listen = admin.clone();
    let config = spec.write("sidecar.toml");
    let mut child = spawn_sidecar(dir.path(), &config);
    let inbound = inbound.parse().unwrap();
    wait_ready(admin.parse().unwrap()).await;

    let token = signer().token();
    let bearer = token.clone();
    let in_flight = tokio::spawn(async move {
        // Not `access_token`: that parameter beside a header token is rejected as ambiguous.
        get(inbound, "/slow?api_key=query-secret", Some(&bearer)).await
    });
    app.wait_for_requests(1).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    // The closed inbound port shows the drain has begun. Only then may the app respond.
    let deadline = tokio::time::Instant::now() + common::WAIT_LIMIT;
    while tokio::net::TcpStream::connect(inbound).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener still open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.release();

    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(reply.status, StatusCode::OK);
    let status = child.wait().await;
    let log = std::fs::read_to_string(dir.path().join("sidecar.log")).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("sidecar stopped"), "{log}");

    let access: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("portcullis::access"))
        .collect();
    assert_eq!(access.len(), 1, "{log}");
    assert!(access[0].contains(r#"path="/slow""#), "{}", access[0]);
    assert!(access[0].contains("status=200"), "{}", access[0]);
    assert!(access[0].contains(r#"subject="peter""#), "{}", access[0]);
    assert!(
        !log.contains("query-secret"),
        "the query string was logged: {log}"
    );
    assert!(!log.contains(&token), "the token was logged: {log}");
}
