//! Raw HTTP helpers for the edge tests, where an HTTP library would normalise the request
//! away: a TCP client that writes exact bytes and parses responses itself, an app that
//! streams bodies without keeping them and notes the connection of each request, a scripted
//! upstream that responds with exact bytes, and a `portcullis` process with its log. All of
//! them use 127.0.0.1 only.

use std::convert::Infallible;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::WAIT_LIMIT;

// ---------------------------------------------------------------------------------------
// Raw client

/// A response parsed from raw bytes.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Returns the first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One TCP connection to a server, written and read byte for byte.
pub struct RawConnection {
    stream: TcpStream,
    buffer: Vec<u8>,
    closed: bool,
}

impl RawConnection {
    pub async fn open(addr: SocketAddr) -> RawConnection {
        RawConnection::try_open(addr).await.expect("connect")
    }

    /// Connects, or returns `None` when the connection is refused.
    pub async fn try_open(addr: SocketAddr) -> Option<RawConnection> {
        let stream = TcpStream::connect(addr).await.ok()?;
        Some(RawConnection {
            stream,
            buffer: Vec::new(),
            closed: false,
        })
    }

    /// Writes `bytes` exactly. A server that already closed may make this fail, which the
    /// caller sees later as a closed connection, so errors are ignored.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Reads the next response, or returns `None` when the server closed (or reset) the
    /// connection before sending one. Panics after [`WAIT_LIMIT`] without either.
    pub async fn response(&mut self) -> Option<RawResponse> {
        let head_end = loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                break end;
            }
            if !self.fill().await {
                assert!(
                    self.buffer.is_empty(),
                    "connection closed inside a response head: {:?}",
                    String::from_utf8_lossy(&self.buffer)
                );
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        self.buffer.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("invalid status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        let no_body = status < 200 || status == 204 || status == 304;
        if no_body {
            return Some(response);
        }
        if response
            .header("transfer-encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("chunked"))
        {
            response.body = self.read_chunked().await;
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().expect("numeric content-length");
            while self.buffer.len() < length {
                assert!(self.fill().await, "connection closed inside a body");
            }
            response.body = self.buffer.drain(..length).collect();
        } else {
            while self.fill().await {}
            response.body = std::mem::take(&mut self.buffer);
        }
        Some(response)
    }

    /// Reads every response until the server closes the connection, and returns them. Panics
    /// when the server neither closes nor sends within [`WAIT_LIMIT`].
    pub async fn responses_until_closed(&mut self) -> Vec<RawResponse> {
        let mut responses = Vec::new();
        while let Some(response) = self.response().await {
            responses.push(response);
        }
        responses
    }

    /// Returns whether the server has closed the connection, waiting up to `wait` for it.
    pub async fn is_closed_within(&mut self, wait: Duration) -> bool {
        if self.closed {
            return true;
        }
        let mut chunk = [0u8; 4096];
        match timeout(wait, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.closed = true;
                true
            }
            Ok(Ok(count)) => {
                self.buffer.extend_from_slice(&chunk[..count]);
                false
            }
            Err(_elapsed) => false,
        }
    }

    async fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buffer, b"\r\n") {
                    break end;
                }
                assert!(self.fill().await, "connection closed inside a chunked body");
            };
            let line = String::from_utf8_lossy(&self.buffer[..line_end]).into_owned();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("invalid chunk size line {line:?}"));
            self.buffer.drain(..line_end + 2);
            if size == 0 {
                // Trailers are not used by these tests; skip to the empty line.
                loop {
                    if let Some(end) = find(&self.buffer, b"\r\n") {
                        let empty = end == 0;
                        self.buffer.drain(..end + 2);
                        if empty {
                            return body;
                        }
                    } else {
                        assert!(self.fill().await, "connection closed inside trailers");
                    }
                }
            }
            while self.buffer.len() < size + 2 {
                assert!(self.fill().await, "connection closed inside a chunk");
            }
            body.extend(self.buffer.drain(..size));
            self.buffer.drain(..2);
        }
    }

    /// Reads more bytes into the buffer; returns false at end of stream or reset.
    async fn fill(&mut self) -> bool {
        if self.closed {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        match timeout(WAIT_LIMIT, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.closed = true;
                false
            }
            Ok(Ok(count)) => {
                self.buffer.extend_from_slice(&chunk[..count]);
                true
            }
            Err(_elapsed) => panic!("no response and no close within {WAIT_LIMIT:?}"),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Sends `bytes` on a new connection and reads responses until the server closes it.
pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<RawResponse> {
    let mut connection = RawConnection::open(addr).await;
    connection.send(bytes).await;
    connection.responses_until_closed().await
}

// ---------------------------------------------------------------------------------------
// Recording app

/// A request as the app received it, without its body, which is only counted.
#[derive(Debug, Clone)]
pub struct AppRequest {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub version: Version,
    pub headers: HeaderMap,
    /// Body bytes read; set once the whole body has arrived.
    pub body_len: Option<u64>,
    /// The sidecar's address for this connection, which distinguishes connections.
    pub peer: SocketAddr,
}

type AppBody = BoxBody<Bytes, Infallible>;

/// An app that records every request it receives, reads bodies without keeping them, keeps
/// `/slow` requests waiting until [`EdgeApp::release`], and responds to a path ending in
/// `/download/<bytes>` with that many bytes, streamed.
#[derive(Clone)]
pub struct EdgeApp {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<AppRequest>>>,
    gate: Arc<Semaphore>,
    connections: Arc<AtomicUsize>,
}

impl EdgeApp {
    /// Starts an HTTP/1.1 app on 127.0.0.1.
    pub async fn start() -> EdgeApp {
        EdgeApp::start_with(false).await
    }

    /// Starts an app that speaks HTTP/2 with prior knowledge (h2c) only.
    pub async fn start_h2c() -> EdgeApp {
        EdgeApp::start_with(true).await
    }

    async fn start_with(http2: bool) -> EdgeApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind app");
        let app = EdgeApp {
            addr: listener.local_addr().expect("app address"),
            requests: Arc::new(Mutex::new(Vec::new())),
            gate: Arc::new(Semaphore::new(0)),
            connections: Arc::new(AtomicUsize::new(0)),
        };
        let server = app.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                server.connections.fetch_add(1, Ordering::Relaxed);
                let app = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let app = app.clone();
                        async move { Ok::<_, Infallible>(app.respond(request, peer).await) }
                    });
                    let io = TokioIo::new(stream);
                    if http2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    }
                });
            }
        });
        app
    }

    async fn respond(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<AppBody> {
        let (parts, mut body) = request.into_parts();
        let target = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let index = {
            let mut requests = self.requests.lock().unwrap();
            requests.push(AppRequest {
                method: parts.method.to_string(),
                target: target.clone(),
                version: parts.version,
                headers: parts.headers,
                body_len: None,
                peer,
            });
            requests.len() - 1
        };
        let mut length = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        length += data.len() as u64;
                    }
                }
                Err(_) => break,
            }
        }
        self.requests.lock().unwrap()[index].body_len = Some(length);

        if target.starts_with("/slow") {
            let _permit = self.gate.acquire().await.expect("gate is never closed");
        }
        if let Some((_, size)) = target.split_once("/download/") {
            let size: u64 = size.parse().expect("numeric download size");
            return download(size);
        }
        let text = format!("{{\"target\":{target:?},\"body_len\":{length}}}");
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(text)).boxed())
            .unwrap()
    }

    /// Returns every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<AppRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Returns the targets of every request received so far.
    pub fn targets(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.target).collect()
    }

    /// Returns how many connections the app has accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Lets every waiting and future `/slow` request complete.
    pub fn release(&self) {
        self.gate.add_permits(100_000);
    }

    /// Waits until the app has received `count` requests.
    pub async fn wait_for_requests(&self, count: usize) {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        while self.requests().len() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "app received {} requests, expected {count}",
                self.requests().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Builds a 200 response with `size` bytes of `x`, sent in 64 KiB chunks as they are polled.
fn download(size: u64) -> Response<AppBody> {
    const CHUNK: u64 = 64 * 1024;
    let chunk = Bytes::from(vec![b'x'; CHUNK as usize]);
    let frames = stream::unfold(size, move |left| {
        let chunk = chunk.clone();
        async move {
            if left == 0 {
                return None;
            }
            let take = left.min(CHUNK);
            // `take` is at most CHUNK, which fits in usize.
            let frame = Frame::data(chunk.slice(..take as usize));
            Some((Ok::<_, Infallible>(frame), left - take))
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-length", size.to_string())
        .body(StreamBody::new(frames).boxed())
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Scripted upstream

/// A TCP server that reads each request head and responds with the bytes `script` returns
/// for the request's position (counting from 0 over all connections). It counts connections
/// and closes a connection after a response when `script` says so.
#[derive(Clone)]
pub struct ScriptedUpstream {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

/// The bytes to send and whether to close the connection after them.
pub struct Scripted {
    pub bytes: Vec<u8>,
    pub close: bool,
}

impl ScriptedUpstream {
    pub async fn start(script: impl Fn(usize) -> Scripted + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let upstream = ScriptedUpstream {
            addr: listener.local_addr().expect("upstream address"),
            connections: Arc::new(AtomicUsize::new(0)),
            requests: Arc::new(AtomicUsize::new(0)),
        };
        let script = Arc::new(script);
        let counters = upstream.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                counters.connections.fetch_add(1, Ordering::Relaxed);
                let script = Arc::clone(&script);
                let requests = Arc::clone(&counters.requests);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        // Requests in these tests have no body, so a head is a request.
                        while find(&buffer, b"\r\n\r\n").is_none() {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(count) => buffer.extend_from_slice(&chunk[..count]),
                            }
                        }
                        let end = find(&buffer, b"\r\n\r\n").unwrap_or_default();
                        buffer.drain(..end + 4);
                        let index = requests.fetch_add(1, Ordering::Relaxed);
                        let scripted = script(index);
                        if stream.write_all(&scripted.bytes).await.is_err() || scripted.close {
                            return;
                        }
                    }
                });
            }
        });
        upstream
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------
// Sidecar process

/// A running `portcullis` binary, killed on drop so a failing test leaves none behind.
pub struct SidecarProcess {
    child: Child,
    log: PathBuf,
}

impl SidecarProcess {
    /// Starts `binary --config config` with `RUST_LOG=rust_log`, logging to
    /// `<dir>/<name>.log`.
    pub fn spawn(binary: &str, dir: &Path, name: &str, config: &Path, rust_log: &str) -> Self {
        let log = dir.join(format!("{name}.log"));
        let file = File::create(&log).expect("create log file");
        let child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .spawn()
            .expect("start the sidecar binary");
        SidecarProcess { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `count` lines containing `text`.
    pub async fn wait_for_log(&self, text: &str, count: usize) {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        while self.log().matches(text).count() < count {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the log never had {count} lines with {text:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal by name (`TERM`, `HUP`) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait_exit(&mut self) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status.code();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the sidecar did not exit:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Returns a field of `/proc/<pid>/status` in KiB, such as `VmRSS` or `VmHWM` (peak).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }
}

impl Drop for SidecarProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
