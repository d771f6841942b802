//! SIGHUP on a `portcullis` process: a new configuration and TLS certificate apply without
//! dropping established connections, and an invalid configuration is rejected with a log
//! line naming the field while the old one keeps serving.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use common::raw::{RawConnection, SidecarProcess};
use common::{free_port, pki, tls_client_config, wait_ready, Pki, Spec};

const BINARY: &str = env!("CARGO_BIN_EXE_portcullis");

/// A sidecar process with fixed ports and the spec that wrote its config file.
struct Running {
    spec: Spec,
    config: PathBuf,
    process: SidecarProcess,
    inbound: SocketAddr,
    _app: common::App,
    _dir: tempfile::TempDir,
}

async fn start(pki: Option<&Pki>) -> Running {
    let app = common::App::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new(dir.path(), app.addr);
    spec.inbound_listen = format!("127.0.0.1:{}", free_port().await);
    spec.admin_listen = format!("127.0.0.1:{}", free_port().await);
    if let Some(pki) = pki {
        spec = spec.with_tls(pki, false);
    }
    let config = spec.write("sidecar.toml");
    let process = SidecarProcess::spawn(BINARY, dir.path(), "sidecar", &config, "info");
    wait_ready(spec.admin_listen.parse().unwrap()).await;
    let inbound = spec.inbound_listen.parse().unwrap();
    Running {
        spec,
        config,
        process,
        inbound,
        _app: app,
        _dir: dir,
    }
}

impl Running {
    /// Writes `text` as the config file, sends SIGHUP and waits for the `count`-th log line
    /// containing `outcome`.
    async fn reload(&self, text: &str, outcome: &str, count: usize) {
        std::fs::write(&self.config, text).unwrap();
        self.process.signal("HUP");
        self.process.wait_for_log(outcome, count).await;
    }
}

/// Opens a TLS connection that trusts only `pki`'s CA, offering HTTP/1.1.
async fn tls_connection(pki: &Pki, addr: SocketAddr) -> Option<SendRequest<Empty<Bytes>>> {
    let mut config = tls_client_config(pki, false);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.ok()?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

async fn status(sender: &mut SendRequest<Empty<Bytes>>, path: &str) -> u16 {
    let request = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::new())
        .unwrap();
    sender
        .send_request(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn raw_status(connection: &mut RawConnection, path: &str) -> Option<u16> {
    connection
        .send(format!("GET {path} HTTP/1.1\r\nHost: orders\r\n\r\n").as_bytes())
        .await;
    connection.response().await.map(|response| response.status)
}

#[tokio::test]
async fn sighup_applies_routes_and_certificate() {
    let old_pki = pki();
    let new_pki = pki();
    let running = start(Some(&old_pki)).await;
    let mut established = tls_connection(&old_pki, running.inbound)
        .await
        .expect("TLS with the first certificate");
    assert_eq!(status(&mut established, "/public/a").await, 200);

    let text = running
        .spec
        .to_toml()
        .replace("prefix = \"/public\"", "prefix = \"/open\"")
        .replace(
            &format!("{:?}", old_pki.server_cert),
            &format!("{:?}", new_pki.server_cert),
        )
        .replace(
            &format!("{:?}", old_pki.server_key),
            &format!("{:?}", new_pki.server_key),
        );
    running.reload(&text, "configuration reloaded", 1).await;

    // The established connection stays open and follows the new routes.
    assert_eq!(status(&mut established, "/public/b").await, 401);
    assert_eq!(status(&mut established, "/open/c").await, 200);
    // New connections get the new certificate.
    assert!(tls_connection(&old_pki, running.inbound).await.is_none());
    let mut fresh = tls_connection(&new_pki, running.inbound)
        .await
        .expect("TLS with the new certificate");
    assert_eq!(status(&mut fresh, "/open/d").await, 200);
}

#[tokio::test]
async fn invalid_reload_keeps_old_configuration() {
    let running = start(None).await;
    let mut established = RawConnection::open(running.inbound).await;
    assert_eq!(raw_status(&mut established, "/public/a").await, Some(200));

    let invalid = format!(
        "{}\n[inbound.limits]\nmax_headers = 0\n",
        running.spec.to_toml()
    );
    running
        .reload(&invalid, "configuration reload rejected", 1)
        .await;
    let moved = running.spec.to_toml().replace(
        &running.spec.inbound_listen,
        &format!("127.0.0.1:{}", free_port().await),
    );
    running
        .reload(&moved, "configuration reload rejected", 2)
        .await;
    let threads = format!("worker_threads = 1\n{}", running.spec.to_toml());
    running
        .reload(&threads, "configuration reload rejected", 3)
        .await;

    let log = running.process.log();
    let rejections: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("configuration reload rejected"))
        .collect();
    assert!(
        rejections[0].contains("inbound.limits.max_headers"),
        "{}",
        rejections[0]
    );
    assert!(
        rejections[1].contains("inbound.listen"),
        "{}",
        rejections[1]
    );
    assert!(
        rejections[2].contains("worker_threads"),
        "{}",
        rejections[2]
    );
    assert!(!log.contains("configuration reloaded"), "{log}");
    assert_eq!(raw_status(&mut established, "/public/b").await, Some(200));
    let mut fresh = RawConnection::open(running.inbound).await;
    assert_eq!(raw_status(&mut fresh, "/public/c").await, Some(200));
}
