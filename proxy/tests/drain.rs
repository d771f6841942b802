//! Draining without losing a request: SIGTERM to a `portcullis` process under a steady,
//! bounded load, and the HTTP/2 drain with GOAWAY. Every request the app received must have
//! got a response, and requests without a response must never have reached the app.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::raw::{EdgeApp, RawConnection, SidecarProcess};
use common::{free_port, signer, wait_ready, Spec, WAIT_LIMIT};

const BINARY: &str = env!("CARGO_BIN_EXE_portcullis");
/// Load generators, each on its own keep-alive connection.
const WORKERS: usize = 6;
/// Bound on each generator's requests, so the load stops by itself even if the sidecar never
/// stops accepting.
const MAX_REQUESTS_PER_WORKER: usize = 400;
/// Responses to wait for before SIGTERM, so the signal lands in steady load.
const ANSWERS_BEFORE_SIGTERM: usize = 100;

/// What one request got.
#[derive(Debug)]
struct Outcome {
    target: String,
    /// The response status, or `None` when the connection closed first.
    status: Option<u16>,
}

/// Sends GETs on a keep-alive connection until a connection is refused or the bound is
/// reached, reconnecting when the server closes the connection.
async fn load(addr: SocketAddr, worker: usize, answered: Arc<AtomicUsize>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut connection: Option<RawConnection> = None;
    for sequence in 0..MAX_REQUESTS_PER_WORKER {
        let open = match connection.take() {
            Some(open) => open,
            None => match RawConnection::try_open(addr).await {
                Some(open) => open,
                // Refused: the listener has stopped accepting.
                None => break,
            },
        };
        let mut open = open;
        let target = format!("/public/load/{worker}/{sequence}");
        open.send(format!("GET {target} HTTP/1.1\r\nHost: orders\r\n\r\n").as_bytes())
            .await;
        match open.response().await {
            Some(response) => {
                answered.fetch_add(1, Ordering::Relaxed);
                let close = response.header("connection") == Some("close");
                outcomes.push(Outcome {
                    target,
                    status: Some(response.status),
                });
                if !close {
                    connection = Some(open);
                }
            }
            None => outcomes.push(Outcome {
                target,
                status: None,
            }),
        }
    }
    outcomes
}

#[tokio::test]
async fn sigterm_under_load_drops_no_accepted_request() {
    let app = EdgeApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::new(dir.path(), app.addr);
    let inbound = format!("127.0.0.1:{}", free_port().await);
    let admin = format!("127.0.0.1:{}", free_port().await);
    spec.inbound_listen = inbound.clone();
    spec.admin_listen = admin.clone();
    let config = spec.write("sidecar.toml");
    let mut sidecar = SidecarProcess::spawn(BINARY, dir.path(), "sidecar", &config, "info");
    wait_ready(admin.parse().unwrap()).await;
    let inbound: SocketAddr = inbound.parse().unwrap();

    // One request certainly in flight when the signal arrives.
    let mut slow = RawConnection::open(inbound).await;
    let token = signer().token();
    slow.send(
        format!("GET /slow HTTP/1.1\r\nHost: orders\r\nAuthorization: Bearer {token}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    app.wait_for_requests(1).await;

    let answered = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| tokio::spawn(load(inbound, worker, Arc::clone(&answered))))
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while answered.load(Ordering::Relaxed) < ANSWERS_BEFORE_SIGTERM {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the load never got going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sidecar.signal("TERM");

    // The app may respond to the slow request only once the drain has begun.
    while tokio::net::TcpStream::connect(inbound).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline + WAIT_LIMIT,
            "listener still open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.release();
    let slow_response = slow
        .response()
        .await
        .expect("the in-flight request is answered");

    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.unwrap());
    }
    let exit = sidecar.wait_exit().await;

    let received: HashSet<String> = app.targets().into_iter().collect();
    let unanswered: Vec<&Outcome> = outcomes.iter().filter(|o| o.status.is_none()).collect();
    let answered: Vec<&Outcome> = outcomes.iter().filter(|o| o.status.is_some()).collect();
    println!(
        "requests sent {}, answered {}, closed before the sidecar read them {}",
        outcomes.len(),
        answered.len(),
        unanswered.len()
    );

    assert_eq!(slow_response.status, 200);
    assert_eq!(slow_response.header("connection"), Some("close"));
    assert!(answered.len() >= ANSWERS_BEFORE_SIGTERM);
    for outcome in &answered {
        assert_eq!(outcome.status, Some(200), "{outcome:?}");
    }
    for outcome in &unanswered {
        assert!(
            !received.contains(&outcome.target),
            "the app received {} but the client got no answer",
            outcome.target
        );
    }
    let answered_targets: HashSet<&str> = answered.iter().map(|o| o.target.as_str()).collect();
    for target in received.iter().filter(|t| t.starts_with("/public/load/")) {
        assert!(
            answered_targets.contains(target.as_str()),
            "the app received {target} but the client got no answer"
        );
    }
    let log = sidecar.log();
    assert_eq!(exit, Some(0), "{log}");
    assert!(log.contains("connections_cut=0"), "{log}");
}

#[tokio::test]
async fn http2_drain_finishes_stream_and_sends_goaway() {
    let app = EdgeApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sidecar = Spec::new(dir.path(), app.addr).start().await;
    let inbound = sidecar.inbound_addr();
    let stream = tokio::net::TcpStream::connect(inbound).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);

    let request = http::Request::get("http://orders/slow")
        .header("authorization", format!("Bearer {}", signer().token()))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let in_flight = sender.send_request(request);
    let in_flight = tokio::spawn(in_flight);
    app.wait_for_requests(1).await;
    let shutdown = tokio::spawn(sidecar.shutdown());

    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    while tokio::net::TcpStream::connect(inbound).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener still open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.release();

    let response = in_flight.await.unwrap().expect("the open stream finishes");
    assert_eq!(response.status(), 200);
    // GOAWAY ends the connection once its last stream is done, so the client's connection
    // task finishes without an error and no new stream can start.
    let ended = tokio::time::timeout(WAIT_LIMIT, connection).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
    let refused = http::Request::get("http://orders/public/late")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert!(sender.send_request(refused).await.is_err());
    shutdown.await.unwrap();
    assert_eq!(app.requests().len(), 1);
}
