//! Bodies stream through the sidecar in both directions without being buffered whole: a
//! large upload and a large download pass through a `portcullis` process whose peak
//! resident memory (`VmHWM` in /proc) stays far below the body size.
//!
//! Each test moves 1 GiB, which takes a few seconds even in a debug build.
//! `PORTCULLIS_STREAM_BYTES` sets another size.

mod common;

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::raw::{EdgeApp, RawConnection, SidecarProcess};
use common::{free_port, wait_ready, Spec};

const BINARY: &str = env!("CARGO_BIN_EXE_portcullis");
const DEFAULT_BYTES: u64 = 1024 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// Peak memory allowed for the sidecar process. A debug build peaked at about 21 MiB while
/// moving 1 GiB (2-core AMD EPYC VM); a buffered body would add the whole body size.
const MAX_PEAK_RSS_KIB: u64 = 96 * 1024;

fn body_bytes() -> u64 {
    std::env::var("PORTCULLIS_STREAM_BYTES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_BYTES)
}

async fn start() -> (
    EdgeApp,
    SidecarProcess,
    std::net::SocketAddr,
    tempfile::TempDir,
) {
    let app = EdgeApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new(dir.path(), app.addr);
    spec.inbound_listen = format!("127.0.0.1:{}", free_port().await);
    spec.admin_listen = format!("127.0.0.1:{}", free_port().await);
    let config = spec.write("sidecar.toml");
    let sidecar = SidecarProcess::spawn(BINARY, dir.path(), "sidecar", &config, "warn");
    wait_ready(spec.admin_listen.parse().unwrap()).await;
    let inbound = spec.inbound_listen.parse().unwrap();
    (app, sidecar, inbound, dir)
}

fn report(direction: &str, bytes: u64, started: Instant, sidecar: &SidecarProcess) {
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{direction}: {} MiB in {seconds:.1} s ({:.0} MiB/s), sidecar peak RSS {} KiB",
        bytes / (1024 * 1024),
        bytes as f64 / (1024.0 * 1024.0) / seconds,
        sidecar.memory_kib("VmHWM"),
    );
}

#[tokio::test]
async fn large_upload_streams() {
    let (app, sidecar, inbound, _dir) = start().await;
    let total = body_bytes();
    let chunk = vec![b'u'; CHUNK];
    let started = Instant::now();

    let mut connection = RawConnection::open(inbound).await;
    let head = format!(
        "POST /public/upload HTTP/1.1\r\nHost: orders\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
    );
    connection.send(head.as_bytes()).await;
    let mut sent = 0u64;
    while sent < total {
        // The rest is below CHUNK here, so it fits in usize.
        let take = (total - sent).min(CHUNK as u64) as usize;
        connection.send(&chunk[..take]).await;
        sent += take as u64;
    }
    let response = connection.response().await.expect("a response");

    report("upload", total, started, &sidecar);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(app.requests()[0].body_len, Some(total));
    let peak = sidecar.memory_kib("VmHWM");
    assert!(peak < MAX_PEAK_RSS_KIB, "peak RSS {peak} KiB");
}

#[tokio::test]
async fn large_download_streams() {
    let (_app, sidecar, inbound, _dir) = start().await;
    let total = body_bytes();
    let started = Instant::now();

    let mut stream = TcpStream::connect(inbound).await.unwrap();
    let request = format!(
        "GET /public/download/{total} HTTP/1.1\r\nHost: orders\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = vec![0u8; CHUNK];
    let mut head = Vec::new();
    let mut received = 0u64;
    loop {
        let count = stream.read(&mut buffer).await.unwrap();
        if count == 0 {
            break;
        }
        if received == 0 && !head.ends_with(b"\r\n\r\n") {
            // Collect the head, then count only body bytes.
            head.extend_from_slice(&buffer[..count]);
            if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                received = (head.len() - end - 4) as u64;
                head.truncate(end + 4);
            }
            continue;
        }
        received += count as u64;
    }

    report("download", total, started, &sidecar);
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(received, total);
    let peak = sidecar.memory_kib("VmHWM");
    assert!(peak < MAX_PEAK_RSS_KIB, "peak RSS {peak} KiB");
}
