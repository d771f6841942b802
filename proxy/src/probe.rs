//! `portcullis probe`: a health check for container runtimes that run a command inside the
//! container, such as Docker Compose's `healthcheck`. The sidecar image has no shell, curl or
//! wget, so the binary checks its own admin endpoint.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The URL checked when none is given: readiness on the default admin address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9901/readyz";

/// Connect, write and read time limit. Container health checks usually allow a few seconds
/// per run, and a loopback request completes in far less.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Largest response read; admin responses are a few hundred bytes.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// A failed probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("invalid probe URL {url:?}: {problem}; expected http://HOST:PORT/PATH")]
    Url { url: String, problem: &'static str },
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("request to {addr} failed: {source}")]
    Exchange {
        addr: String,
        source: std::io::Error,
    },
    #[error("{url} returned a response that is not HTTP: {line:?}")]
    NotHttp { url: String, line: String },
    #[error("{url} returned {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

/// Sends `GET url` over plain HTTP/1.1 and succeeds on status 200.
pub fn probe(url: &str) -> Result<(), ProbeError> {
    let invalid = |problem| ProbeError::Url {
        url: url.to_owned(),
        problem,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// is supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(invalid("the host is missing"));
    }
    let addr: SocketAddr = authority
        .to_socket_addrs()
        .map_err(|_| invalid("the host and port do not resolve"))?
        .next()
        .ok_or_else(|| invalid("the host and port do not resolve"))?;

    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|source| ProbeError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let exchange_error = |source| ProbeError::Exchange {
        addr: addr.to_string(),
        source,
    };
    stream
        .set_read_timeout(Some(TIMEOUT))
        .map_err(exchange_error)?;
    stream
        .set_write_timeout(Some(TIMEOUT))
        .map_err(exchange_error)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(exchange_error)?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut response)
        .map_err(exchange_error)?;

    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| ProbeError::NotHttp {
            url: url.to_owned(),
            line: status_line.to_owned(),
        })?;
    if status == 200 {
        return Ok(());
    }
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim())
        .unwrap_or_default();
    Err(ProbeError::Status {
        url: url.to_owned(),
        status,
        body: body.to_owned(),
    })
}
