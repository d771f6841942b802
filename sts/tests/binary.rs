//! The `portcullis-sts` binary: the book's curl command, `hash-password`, `rotate-key`
//! against a running server, configuration errors, logs, and SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::jwk::JwkSet;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_portcullis-sts");

/// Upper bound for the server to log its address. It only detects a hung start, and
/// includes RSA key generation on a busy machine.
const START_DEADLINE: Duration = Duration::from_secs(120);

/// A server process, killed on drop if a test fails before stopping it.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    fn spawn(args: &[&str]) -> ServerProcess {
        let mut child = Command::new(BINARY)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_sender, addr_receiver) = mpsc::channel();
        let collected = Arc::clone(&logs);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains(" listening") {
                    if let Some(addr) = line
                        .split_whitespace()
                        .find_map(|field| field.strip_prefix("addr="))
                    {
                        let _ = addr_sender.send(addr.parse::<SocketAddr>().unwrap());
                    }
                }
                collected.lock().unwrap().push(line);
            }
        });
        let addr = match addr_receiver.recv_timeout(START_DEADLINE) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the server did not log its address: {:?}",
                    logs.lock().unwrap()
                );
            }
        };
        ServerProcess {
            child,
            addr,
            logs,
            reader: Some(reader),
        }
    }

    /// Sends SIGTERM, waits for the exit, and returns the exit status with every log line.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        let logs = self.logs.lock().unwrap().join("\n");
        (status, logs)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_args(data_dir: &Path) -> Vec<String> {
    vec![
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
    ]
}

fn spawn_demo(data_dir: &Path) -> ServerProcess {
    let args = serve_args(data_dir);
    ServerProcess::spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Posts a token request with the in-process HTTPS client trusting the generated CA.
async fn post_token(
    data_dir: &Path,
    addr: SocketAddr,
    id: &str,
    secret: &str,
    form: &str,
) -> Value {
    let client = common::https_client(&data_dir.join("tls/sts-ca.pem"));
    let request = Request::post(format!("https://127.0.0.1:{}/oauth/token", addr.port()))
        .header(header::AUTHORIZATION, common::basic(id, secret))
        .header(header::CONTENT_TYPE, common::FORM)
        .body(Full::new(Bytes::from(form.to_owned())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

async fn fetch_jwks(data_dir: &Path, addr: SocketAddr) -> JwkSet {
    let client = common::https_client(&data_dir.join("tls/sts-ca.pem"));
    let uri = format!("https://127.0.0.1:{}/.well-known/jwks.json", addr.port());
    let response = client
        .request(Request::get(uri).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn book_curl_command_works() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl is not installed; skipping the book's curl command");
        return;
    }
    let data_dir = tempfile::tempdir().unwrap();
    let server = spawn_demo(data_dir.path());

    let output = Command::new("curl")
        .args([
            "-sS",
            "-v",
            "-X",
            "POST",
            "--basic",
            "-u",
            "applicationid:applicationsecret",
            "-H",
            "Content-Type: application/x-www-form-urlencoded;charset=UTF-8",
            "-k",
            "-d",
            "grant_type=password&username=peter&password=peter123&scope=foo",
            &format!("https://127.0.0.1:{}/oauth/token", server.addr.port()),
        ])
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let body: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "foo");
    let access_token = body["access_token"].as_str().unwrap();
    let jwks = fetch_jwks(data_dir.path(), server.addr).await;
    let (_, claims) = common::verify_with(&jwks, access_token, "https://localhost:8443");
    assert_eq!(claims.sub, "peter");

    let (status, logs) = server.terminate();
    assert!(status.success(), "{status}");
    assert!(logs.contains("client_id=\"applicationid\""), "{logs}");
    assert!(logs.contains("grant_type=\"password\""), "{logs}");
    for secret in [
        "applicationsecret",
        "peter123",
        access_token,
        body["refresh_token"].as_str().unwrap(),
    ] {
        assert!(!logs.contains(secret), "the log contains a secret: {logs}");
    }
}

#[tokio::test]
async fn cli_rotation_reaches_running_server() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = spawn_demo(data_dir.path());
    let form = "grant_type=client_credentials";
    let before = post_token(
        data_dir.path(),
        server.addr,
        "applicationid",
        "applicationsecret",
        form,
    )
    .await;
    let old_kid = jsonwebtoken::decode_header(before["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();

    let data_dir_arg = data_dir.path().display().to_string();
    let output = run(&["rotate-key", "--data-dir", &data_dir_arg], b"");

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let new_kid = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_ne!(new_kid, old_kid);
    let after = post_token(
        data_dir.path(),
        server.addr,
        "applicationid",
        "applicationsecret",
        form,
    )
    .await;
    let signed_with = jsonwebtoken::decode_header(after["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(signed_with, new_kid);
    let jwks = fetch_jwks(data_dir.path(), server.addr).await;
    assert!(jwks.find(&old_kid).is_some());
    assert!(jwks.find(&new_kid).is_some());
    assert!(server.terminate().0.success());
}

#[tokio::test]
async fn hashed_secrets_work_in_config_file() {
    let hashed = run(&["hash-password"], b"machine secret\n");
    assert!(
        hashed.status.success(),
        "{}",
        String::from_utf8_lossy(&hashed.stderr)
    );
    let hash = String::from_utf8(hashed.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sts.toml");
    std::fs::write(
        &config_path,
        format!(
            r#"
listen = "127.0.0.1:0"
data_dir = "{}"
signing_algorithm = "EdDSA"

[[clients]]
id = "machine"
secret_hash = "{hash}"
grants = ["client_credentials"]
scopes = ["inventory.write"]
audiences = ["inventory"]
token_lifetime_secs = 300
"#,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let server = ServerProcess::spawn(&["--config", config_path.to_str().unwrap()]);

    let body = post_token(
        &dir.path().join("data"),
        server.addr,
        "machine",
        "machine secret",
        "grant_type=client_credentials",
    )
    .await;

    assert_eq!(body["scope"], "inventory.write");
    assert_eq!(body["expires_in"], 300);
    assert!(server.terminate().0.success());
}

#[test]
fn empty_secret_is_rejected() {
    let output = run(&["hash-password"], b"\n");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
}

#[test]
fn invalid_config_names_field() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sts.toml");
    std::fs::write(
        &config_path,
        "listen = \"127.0.0.1:0\"\nsigning_algorithm = \"HS256\"\n",
    )
    .unwrap();

    let output = run(&["--config", config_path.to_str().unwrap()], b"");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("signing_algorithm"), "{stderr}");
}

#[test]
fn listen_with_subcommand_is_rejected() {
    let output = run(&["--listen", "127.0.0.1:0", "rotate-key"], b"");

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[test]
fn sigterm_stops_gracefully() {
    let data_dir = tempfile::tempdir().unwrap();
    let server = spawn_demo(data_dir.path());

    let (status, logs) = server.terminate();

    assert!(status.success(), "{status}");
    assert!(logs.contains("SIGTERM"), "{logs}");
    assert!(logs.contains("token service stopped"), "{logs}");
}
