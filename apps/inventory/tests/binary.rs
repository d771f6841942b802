//! The `inventory-app` binary as a real process: it serves, then exits cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use apps_common::test_client::{empty_request, send};
use http::{Method, StatusCode};

/// Bound on every wait for the process, so a hung binary fails the test.
const WAIT: Duration = Duration::from_secs(10);

/// Kills the process if the test fails before it exits.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_serves_then_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_inventory-app"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("inventory.db"))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let lines = log_lines(&mut child.0);

    let addr = wait_for_listen_addr(&lines);
    let response = send(addr, empty_request(Method::GET, "/inventory/101")).await;
    assert_eq!(response.status, StatusCode::OK);

    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut shutdown_logged = false;
    while let Ok(line) = lines.recv_timeout(WAIT) {
        shutdown_logged |= line.contains("shutdown complete");
    }
    let status = child.0.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(shutdown_logged, "no 'shutdown complete' log line");
}

/// Forwards the process's standard error, line by line, to a channel that closes when
/// the process exits.
fn log_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// Reads log lines until the "listening" line and returns its `local_addr`.
fn wait_for_listen_addr(lines: &mpsc::Receiver<String>) -> SocketAddr {
    loop {
        let line = lines
            .recv_timeout(WAIT)
            .expect("the binary did not log a listening line");
        if let Some((_, rest)) = line.split_once("local_addr=") {
            let addr = rest.split_whitespace().next().unwrap();
            return addr.parse().unwrap();
        }
    }
}
