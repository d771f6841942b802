//! [`Http1Pool`]: the HTTP/1.1 client for plain upstreams, written on the sidecar's own
//! framing parser instead of hyper's client.
//!
//! A request is written and its response read by the task that handles it, on a pooled
//! connection that no other request uses until the response body ends. hyper's client runs
//! each connection as a task of its own and passes every request and response through
//! channels to it. hyper-util's pool also hashes its key twice per request. This client does
//! neither.
//!
//! Responses get the checks of [`ResponseGuard`](crate::framing::ResponseGuard): the head
//! goes through the strict [`HeadParser`], a chunked body through [`ChunkedBody`], and a
//! response that breaks a rule fails with [`InvalidResponse`] and closes the connection.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::request::Parts;
use http::uri::Authority;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{BoxError, FailureKind, RequestBody};
use crate::framing::io::poll_read_into;
use crate::framing::{
    BodyFraming, ChunkProgress, ChunkedBody, HeadParse, HeadParser, InvalidResponse, MessageKind,
    ResponseRejectionObserver, RESPONSE_LIMITS,
};

/// Header fields parsed without a heap allocation. Longer heads take a larger table.
const INLINE_HEADERS: usize = 64;
/// How often idle connections are checked for age and for a peer that closed them.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// A failed exchange: what went wrong, classified for the metrics and the status sent back.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    #[error("connection to {authority} failed: {source}")]
    Connect {
        authority: Authority,
        source: io::Error,
    },
    #[error("no connection to {authority} within {timeout:?}")]
    ConnectTimeout {
        authority: Authority,
        timeout: Duration,
    },
    #[error(transparent)]
    Invalid(#[from] InvalidResponse),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
    #[error("the connection closed before the response head arrived")]
    Closed,
    #[error("the upstream URI {uri} has no host: configure an absolute http:// URI")]
    MissingHost { uri: http::Uri },
    #[error("reading the request body failed: {0}")]
    RequestBody(BoxError),
}

impl Http1Error {
    pub fn kind(&self) -> FailureKind {
        match self {
            Http1Error::Connect { .. } => FailureKind::Connect,
            Http1Error::ConnectTimeout { .. } => FailureKind::ConnectTimeout,
            Http1Error::Invalid(_) => FailureKind::InvalidResponse,
            Http1Error::Io { .. }
            | Http1Error::Closed
            | Http1Error::MissingHost { .. }
            | Http1Error::RequestBody(_) => FailureKind::Protocol,
        }
    }

    /// Returns whether a bodiless request may be sent again on a new connection: the pooled
    /// connection turned out closed before any response byte came back.
    fn stale_connection(&self) -> bool {
        matches!(self, Http1Error::Closed | Http1Error::Io { .. })
    }
}

/// One TCP connection and the bytes read from it that no response has consumed yet.
struct Connection {
    socket: Socket,
    buf: BytesMut,
}

/// The socket of a connection: whole, or only its read half while a task of its own finishes
/// sending a request body.
enum Socket {
    Whole(TcpStream),
    Reading(OwnedReadHalf),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Whole(stream) => Pin::new(stream).poll_read(cx, buf),
            Socket::Reading(half) => Pin::new(half).poll_read(cx, buf),
        }
    }
}

/// The state of a request body when the response head arrived.
enum Sending {
    /// Sent whole, or there was none.
    Done,
    /// Stopped early, so the connection cannot take another request.
    Abandoned,
    /// Still being sent by a task of its own, which hands back the write half when it has
    /// sent everything, or nothing when it failed.
    InBackground(oneshot::Receiver<Option<OwnedWriteHalf>>),
}

struct Idle {
    connection: Connection,
    authority: Authority,
    since: Instant,
}

/// The idle connections of an [`Http1Pool`], shared with the response bodies that give
/// their connection back when they end.
struct Shared {
    idle: Mutex<Vec<Idle>>,
    idle_timeout: Duration,
    /// Whether a sweeper task is running, so that at most one is.
    sweeping: AtomicBool,
}

impl Shared {
    /// Takes the most recently used idle connection to `authority` that is still open.
    fn checkout(&self, authority: &Authority) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|err| err.into_inner());
        while let Some(index) = idle.iter().rposition(|entry| entry.authority == *authority) {
            let entry = idle.swap_remove(index);
            if entry.since.elapsed() < self.idle_timeout && still_open(&entry.connection.socket) {
                return Some(entry.connection);
            }
        }
        None
    }

    fn checkin(self: &Arc<Self>, connection: Connection, authority: Authority) {
        let mut idle = self.idle.lock().unwrap_or_else(|err| err.into_inner());
        idle.push(Idle {
            connection,
            authority,
            since: Instant::now(),
        });
        // Under the lock, where `sweep` clears the flag, so a sweeper that is about to stop
        // cannot miss this connection.
        let start = !self.sweeping.swap(true, Ordering::AcqRel);
        drop(idle);
        if start {
            spawn_sweeper(Arc::downgrade(self));
        }
    }

    /// Drops idle connections that are too old or that the peer closed, and returns whether
    /// any remain.
    fn sweep(&self) -> bool {
        let mut idle = self.idle.lock().unwrap_or_else(|err| err.into_inner());
        idle.retain(|entry| {
            entry.since.elapsed() < self.idle_timeout && still_open(&entry.connection.socket)
        });
        if idle.is_empty() {
            self.sweeping.store(false, Ordering::Release);
            return false;
        }
        true
    }
}

/// Sweeps the pool while it has idle connections, so a quiet sidecar does not keep sockets
/// the app has closed. It stops when the pool is empty or dropped, and the next checkin
/// starts another.
fn spawn_sweeper(shared: Weak<Shared>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_INTERVAL).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if !shared.sweep() {
                return;
            }
        }
    });
}

/// Returns whether an idle connection can take a request: nothing arrived on it since its
/// last response, not even the end of the stream. The readiness check costs no system call
/// unless the socket became readable.
fn still_open(socket: &Socket) -> bool {
    let Socket::Whole(stream) = socket else {
        return false;
    };
    let mut context = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut context) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0; 1];
            matches!(stream.try_read(&mut probe), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

/// A pool of HTTP/1.1 connections to plain upstreams. Clones share the pool.
#[derive(Clone)]
pub struct Http1Pool {
    shared: Arc<Shared>,
    connect_timeout: Duration,
    observer: ResponseRejectionObserver,
}

impl fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http1Pool")
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// The framing of a request body on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestFraming {
    Empty,
    Length(u64),
    Chunked,
}

impl Http1Pool {
    pub fn new(
        connect_timeout: Duration,
        idle_timeout: Duration,
        observer: ResponseRejectionObserver,
    ) -> Http1Pool {
        Http1Pool {
            shared: Arc::new(Shared {
                idle: Mutex::new(Vec::new()),
                idle_timeout,
                sweeping: AtomicBool::new(false),
            }),
            connect_timeout,
            observer,
        }
    }

    /// Opens a connection to `authority`, within the connect timeout.
    pub async fn connect(&self, authority: &Authority) -> Result<TcpStream, Http1Error> {
        let address = (authority.host(), authority.port_u16().unwrap_or(80));
        let host = address.0.trim_start_matches('[').trim_end_matches(']');
        let connecting = TcpStream::connect((host, address.1));
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) if source.kind() == io::ErrorKind::TimedOut => {
                return Err(Http1Error::ConnectTimeout {
                    authority: authority.clone(),
                    timeout: self.connect_timeout,
                })
            }
            Ok(Err(source)) => {
                return Err(Http1Error::Connect {
                    authority: authority.clone(),
                    source,
                })
            }
            Err(_elapsed) => {
                return Err(Http1Error::ConnectTimeout {
                    authority: authority.clone(),
                    timeout: self.connect_timeout,
                })
            }
        };
        // Requests are small and latency-bound, so Nagle's algorithm would only delay them.
        stream
            .set_nodelay(true)
            .map_err(|source| Http1Error::Connect {
                authority: authority.clone(),
                source,
            })?;
        Ok(stream)
    }

    /// Sends a request whose URI is absolute and waits for the response head. `on_retry` is
    /// called before the one retry of a refused connection, which only a request without a
    /// body and with an idempotent method gets, after `retry_delay`.
    pub async fn send(
        &self,
        parts: Parts,
        body: RequestBody,
        retry_delay: Duration,
        on_retry: impl Fn(&Http1Error),
    ) -> Result<Response<Http1Body>, Http1Error> {
        let authority = parts
            .uri
            .authority()
            .cloned()
            .ok_or_else(|| Http1Error::MissingHost {
                uri: parts.uri.clone(),
            })?;
        let framing = request_framing(&body);
        let replayable = parts.method.is_idempotent() && framing == RequestFraming::Empty;
        let head = encode_head(&parts, &authority, framing);
        let head_request = parts.method == Method::HEAD;

        let mut connection = self.shared.checkout(&authority);
        let mut body = Some(body);
        loop {
            let reused = connection.is_some();
            let current = match connection.take() {
                Some(connection) => connection,
                None => {
                    let stream = match self.connect(&authority).await {
                        Ok(stream) => stream,
                        Err(err @ Http1Error::Connect { .. }) if replayable => {
                            on_retry(&err);
                            tokio::time::sleep(retry_delay).await;
                            self.connect(&authority).await?
                        }
                        Err(err) => return Err(err),
                    };
                    Connection {
                        socket: Socket::Whole(stream),
                        buf: BytesMut::new(),
                    }
                }
            };
            let exchange = exchange(current, &head, body.take(), framing, &self.observer).await;
            match exchange {
                Ok((connection, status_head, sending)) => {
                    return self.response(
                        connection,
                        status_head,
                        sending,
                        head_request,
                        authority,
                    );
                }
                // A pooled connection the app closed in the meantime: a bodiless request
                // goes once more on a new one.
                Err(err) if reused && replayable && err.stale_connection() => {
                    tracing::debug!(error = %err, "pooled connection was closed; sending on a new one");
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Builds the response from its checked head and sets up its body.
    fn response(
        &self,
        mut connection: Connection,
        head: ResponseHead,
        sending: Sending,
        head_request: bool,
        authority: Authority,
    ) -> Result<Response<Http1Body>, Http1Error> {
        let head_bytes = connection.buf.split_to(head.len).freeze();
        let response = parse_response_head(&head_bytes)?;
        let framing = if head_request || head.status == 204 || head.status == 304 {
            BodyFraming::None
        } else {
            head.framing
        };
        let reusable = !matches!(sending, Sending::Abandoned) && !head.close;
        let mut body = Http1Body {
            connection: Some(connection),
            sending,
            framing: match framing {
                BodyFraming::None => ReadFraming::Ended,
                BodyFraming::Length(length) => ReadFraming::Length(length),
                BodyFraming::Chunked => {
                    ReadFraming::Chunked(Box::new(ChunkedBody::new(RESPONSE_LIMITS)))
                }
                BodyFraming::UntilClose => ReadFraming::UntilClose,
            },
            reusable: reusable && framing != BodyFraming::UntilClose,
            pool: Arc::clone(&self.shared),
            authority,
            observer: Arc::clone(&self.observer),
        };
        if matches!(body.framing, ReadFraming::Ended) {
            body.finish();
        }
        Ok(response.map(|()| body))
    }
}

/// Chooses the request body's framing: none for a body that is already over, a length when
/// the body reports an exact size, chunked otherwise.
fn request_framing(body: &RequestBody) -> RequestFraming {
    if body.is_end_stream() {
        return RequestFraming::Empty;
    }
    match body.size_hint().exact() {
        Some(length) => RequestFraming::Length(length),
        None => RequestFraming::Chunked,
    }
}

/// Writes the request line and header fields. `Content-Length` and `Transfer-Encoding` are
/// replaced by the framing this client uses, and `Host` is added from the URI when absent.
fn encode_head(parts: &Parts, authority: &Authority, framing: RequestFraming) -> Vec<u8> {
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |target| target.as_str());
    let mut head = Vec::with_capacity(256 + parts.headers.len() * 32);
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");

    if !parts.headers.contains_key(HOST) {
        push_field(&mut head, "host", authority.as_str().as_bytes());
    }
    let had_length = parts.headers.contains_key(CONTENT_LENGTH);
    for (name, value) in &parts.headers {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            continue;
        }
        push_field(&mut head, name.as_str(), value.as_bytes());
    }

    match framing {
        RequestFraming::Empty => {
            // A request that declared an empty body, or whose method usually has a body,
            // gets `content-length: 0` as hyper's client sends it. Others get no framing field.
            let expects_body = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
            if had_length || expects_body {
                push_field(&mut head, "content-length", b"0");
            }
        }
        RequestFraming::Length(length) => {
            push_field(&mut head, "content-length", length.to_string().as_bytes());
        }
        RequestFraming::Chunked => push_field(&mut head, "transfer-encoding", b"chunked"),
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn push_field(head: &mut Vec<u8>, name: &str, value: &[u8]) {
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n");
}

/// The facts the framing parser read from a final response head.
#[derive(Debug, Clone, Copy)]
struct ResponseHead {
    len: usize,
    status: u16,
    framing: BodyFraming,
    close: bool,
}

/// Writes the request and reads the final response head. A request body is sent while the
/// response is awaited, so an early response from the app (a 413, for example) arrives
/// before the body has been sent. Returns the connection, the head and what became of the
/// body.
async fn exchange(
    connection: Connection,
    head: &[u8],
    body: Option<RequestBody>,
    framing: RequestFraming,
    observer: &ResponseRejectionObserver,
) -> Result<(Connection, ResponseHead, Sending), Http1Error> {
    let Connection { socket, mut buf } = connection;
    // Pooled and new connections are always whole, because a read half is never pooled.
    let Socket::Whole(mut stream) = socket else {
        return Err(Http1Error::Closed);
    };
    // Other ready tasks run first, so writes reach the app in bursts. Writing at once woke
    // the app on its core for every request, which cost more kernel time than it saved.
    tokio::task::yield_now().await;
    write_all(&mut stream, head).await?;
    let body = match body {
        Some(body) if framing != RequestFraming::Empty => body,
        _ => {
            let head = read_head(&mut stream, &mut buf, observer).await?;
            let connection = Connection {
                socket: Socket::Whole(stream),
                buf,
            };
            return Ok((connection, head, Sending::Done));
        }
    };

    // The halves are owned, so the body can outlive this call when the app responds early.
    let (mut reader, writer) = stream.into_split();
    let mut send = Box::pin(send_body(writer, body, framing));
    let mut sent: Option<OwnedWriteHalf> = None;
    let mut write_error: Option<Http1Error> = None;
    let received = {
        let receive = read_head(&mut reader, &mut buf, observer);
        tokio::pin!(receive);
        loop {
            let still_sending = sent.is_none() && write_error.is_none();
            tokio::select! {
                // A response that is already readable wins over a failed write: an app that
                // rejects an upload often closes the connection without reading the body.
                biased;
                head = &mut receive => break head,
                result = &mut send, if still_sending => match result {
                    Ok(writer) => sent = Some(writer),
                    Err(err) => write_error = Some(err),
                },
            }
        }
    };
    let failed = write_error.is_some();
    let head = match (received, write_error) {
        (Ok(head), _) => head,
        (Err(_), Some(write_error)) => return Err(write_error),
        (Err(read_error), None) => return Err(read_error),
    };

    let (socket, sending) = match sent {
        Some(writer) => match reader.reunite(writer) {
            Ok(stream) => (Socket::Whole(stream), Sending::Done),
            Err(halves) => (Socket::Reading(halves.0), Sending::Abandoned),
        },
        // A failed write, a rejection or `Connection: close` ends the upload.
        None if failed || head.close || head.status >= 400 => {
            (Socket::Reading(reader), Sending::Abandoned)
        }
        // A success before the body ended: the app may be reading the body as it responds,
        // so a task of its own sends the rest while the response goes on.
        None => {
            let (done, receiver) = oneshot::channel();
            tokio::spawn(async move {
                let writer = send.await.ok();
                // The response may have ended already, and then the result is dropped.
                let _ = done.send(writer);
            });
            (Socket::Reading(reader), Sending::InBackground(receiver))
        }
    };
    Ok((Connection { socket, buf }, head, sending))
}

async fn write_all<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> Result<(), Http1Error> {
    writer
        .write_all(bytes)
        .await
        .map_err(|source| Http1Error::Io {
            context: "writing the request failed",
            source,
        })
}

/// Streams the request body in `framing`, checking a declared length.
/// Returns the write half once the whole body is written.
async fn send_body(
    mut writer: OwnedWriteHalf,
    mut body: RequestBody,
    framing: RequestFraming,
) -> Result<OwnedWriteHalf, Http1Error> {
    let mut sent: u64 = 0;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|err| Http1Error::RequestBody(err.into()))?;
        let Ok(data) = frame.into_data() else {
            // Trailers are not forwarded: few apps read them, and Envoy's HTTP/1 codec also
            // drops them unless `enable_trailers` is set.
            continue;
        };
        if data.is_empty() {
            continue;
        }
        sent += data.len() as u64;
        match framing {
            RequestFraming::Length(length) if sent > length => {
                return Err(Http1Error::RequestBody(
                    format!("the body is longer than its declared {length} bytes").into(),
                ))
            }
            RequestFraming::Chunked => {
                let size = format!("{:x}\r\n", data.len());
                write_all(&mut writer, size.as_bytes()).await?;
                write_all(&mut writer, &data).await?;
                write_all(&mut writer, b"\r\n").await?;
            }
            _ => write_all(&mut writer, &data).await?,
        }
    }
    match framing {
        RequestFraming::Length(length) if sent != length => {
            return Err(Http1Error::RequestBody(
                format!("the body ended after {sent} of its declared {length} bytes").into(),
            ))
        }
        RequestFraming::Chunked => write_all(&mut writer, b"0\r\n\r\n").await?,
        // The socket is written without a buffer, so there is nothing to flush.
        _ => {}
    }
    Ok(writer)
}

/// Reads until `buf` contains a complete final response head, skipping interim (1xx) ones.
async fn read_head<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    observer: &ResponseRejectionObserver,
) -> Result<ResponseHead, Http1Error> {
    let mut parser = HeadParser::for_kind(MessageKind::Response, RESPONSE_LIMITS);
    loop {
        if !buf.is_empty() {
            match parser.feed(buf) {
                HeadParse::Incomplete => {}
                HeadParse::Rejected(rejection) => {
                    return Err(reject(
                        observer,
                        rejection.reason.label(),
                        rejection.message,
                    ))
                }
                HeadParse::Complete(head) => {
                    let status = head.status.unwrap_or_default();
                    if status == 101 {
                        return Err(reject(
                            observer,
                            "switching_protocols",
                            "the upstream switched protocols (101), which the sidecar never asks for"
                                .into(),
                        ));
                    }
                    if (100..200).contains(&status) {
                        buf.advance(head.len);
                        parser = HeadParser::for_kind(MessageKind::Response, RESPONSE_LIMITS);
                        continue;
                    }
                    return Ok(ResponseHead {
                        len: head.len,
                        status,
                        framing: head.framing,
                        close: head.close,
                    });
                }
            }
        }
        let read = std::future::poll_fn(|cx| poll_read_into(reader, buf, cx))
            .await
            .map_err(|source| Http1Error::Io {
                context: "reading the response failed",
                source,
            })?;
        if read == 0 {
            return Err(Http1Error::Closed);
        }
    }
}

/// Counts a rejected response and builds its error.
fn reject(
    observer: &ResponseRejectionObserver,
    reason: &'static str,
    message: String,
) -> Http1Error {
    tracing::debug!(reason, %message, "upstream response framing rejected");
    observer(reason);
    Http1Error::Invalid(InvalidResponse(message))
}

/// Parses a head the framing parser already accepted into a response with its fields. The
/// field values share `head`'s bytes.
fn parse_response_head(head: &Bytes) -> Result<Response<()>, Http1Error> {
    let mut inline = [httparse::EMPTY_HEADER; INLINE_HEADERS];
    let mut large;
    let mut parsed = httparse::Response::new(&mut inline);
    let mut status = parsed.parse(head);
    if matches!(status, Err(httparse::Error::TooManyHeaders)) {
        large = vec![httparse::EMPTY_HEADER; RESPONSE_LIMITS.max_headers];
        parsed = httparse::Response::new(&mut large);
        status = parsed.parse(head);
    }
    let invalid = |detail: String| Http1Error::Invalid(InvalidResponse(detail));

    match status {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("incomplete response head".into())),
        Err(err) => return Err(invalid(format!("unreadable response head ({err})"))),
    }
    let code = parsed.code.unwrap_or_default();
    let status =
        StatusCode::from_u16(code).map_err(|_| invalid(format!("invalid status code {code}")))?;

    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| invalid(format!("invalid header name {:?}", field.name)))?;
        let value = HeaderValue::from_maybe_shared(head.slice_ref(field.value))
            .map_err(|_| invalid(format!("invalid value of header {:?}", field.name)))?;
        headers.append(name, value);
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = if parsed.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *response.headers_mut() = headers;
    Ok(response)
}

/// The result of polling a response body for its next frame.
type FramePoll = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

enum ReadFraming {
    Length(u64),
    Chunked(Box<ChunkedBody>),
    UntilClose,
    Ended,
}

/// A response body read from its connection as the receiver polls it. The connection goes
/// back to the pool when the body ends cleanly, and is closed when the body fails or is
/// dropped early.
pub struct Http1Body {
    connection: Option<Connection>,
    sending: Sending,
    framing: ReadFraming,
    reusable: bool,
    pool: Arc<Shared>,
    authority: Authority,
    observer: ResponseRejectionObserver,
}

impl Http1Body {
    /// Ends the body: the connection is pooled when nothing else arrived on it.
    fn finish(&mut self) {
        self.framing = ReadFraming::Ended;
        let Some(Connection { socket, buf }) = self.connection.take() else {
            return;
        };
        if !self.reusable || !buf.is_empty() {
            return;
        }
        let sending = std::mem::replace(&mut self.sending, Sending::Abandoned);
        let stream = match (socket, sending) {
            (Socket::Whole(stream), Sending::Done) => stream,
            // Pooled only if the request body was sent whole by now. A body still on its way
            // keeps its task, and the connection closes when the task ends.
            (Socket::Reading(reader), Sending::InBackground(mut receiver)) => {
                match receiver.try_recv() {
                    Ok(Some(writer)) => match reader.reunite(writer) {
                        Ok(stream) => stream,
                        Err(_) => return,
                    },
                    _ => return,
                }
            }
            _ => return,
        };
        let connection = Connection {
            socket: Socket::Whole(stream),
            buf,
        };
        self.pool.checkin(connection, self.authority.clone());
    }

    fn fail(&mut self, error: Http1Error) -> FramePoll {
        self.framing = ReadFraming::Ended;
        self.connection = None;
        Poll::Ready(Some(Err(error.into())))
    }

    /// Returns the next data frame found in the buffer, `None` when more bytes are needed.
    /// Ends the body when its last byte is taken.
    fn next_frame(&mut self) -> Option<FramePoll> {
        let connection = self.connection.as_mut()?;
        let buf = &mut connection.buf;
        match &mut self.framing {
            ReadFraming::Ended => Some(Poll::Ready(None)),
            ReadFraming::Length(remaining) => {
                if buf.is_empty() {
                    return None;
                }
                let count =
                    usize::try_from(*remaining).map_or(buf.len(), |left| left.min(buf.len()));
                let data = buf.split_to(count).freeze();
                *remaining -= count as u64;
                if *remaining == 0 {
                    self.finish();
                }
                Some(Poll::Ready(Some(Ok(Frame::data(data)))))
            }
            ReadFraming::UntilClose => {
                if buf.is_empty() {
                    return None;
                }
                let data = buf.split().freeze();
                Some(Poll::Ready(Some(Ok(Frame::data(data)))))
            }
            ReadFraming::Chunked(chunked) => {
                // Framing bytes go through the parser one at a time, and data is cut out whole.
                while !buf.is_empty() && chunked.data_remaining() == 0 {
                    match chunked.feed(&buf[..1]) {
                        Err(rejection) => {
                            let error =
                                reject(&self.observer, rejection.reason.label(), rejection.message);
                            return Some(self.fail(error));
                        }
                        Ok(ChunkProgress::Done(_)) => {
                            buf.advance(1);
                            self.finish();
                            return Some(Poll::Ready(None));
                        }
                        Ok(ChunkProgress::NeedMore) => buf.advance(1),
                    }
                }
                let remaining = chunked.data_remaining();
                if remaining == 0 || buf.is_empty() {
                    return None;
                }
                let count =
                    usize::try_from(remaining).map_or(buf.len(), |left| left.min(buf.len()));
                chunked.consume_data(count as u64);
                Some(Poll::Ready(Some(Ok(Frame::data(
                    buf.split_to(count).freeze(),
                )))))
            }
        }
    }
}

impl Body for Http1Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> FramePoll {
        let this = self.get_mut();
        loop {
            if let Some(ready) = this.next_frame() {
                return ready;
            }
            let Some(connection) = this.connection.as_mut() else {
                return Poll::Ready(None);
            };
            let read = match ready!(poll_read_into(
                &mut connection.socket,
                &mut connection.buf,
                cx
            )) {
                Ok(read) => read,
                Err(source) => {
                    return this.fail(Http1Error::Io {
                        context: "reading the response body failed",
                        source,
                    })
                }
            };
            if read == 0 {
                if matches!(this.framing, ReadFraming::UntilClose) {
                    this.reusable = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                return this.fail(Http1Error::Io {
                    context: "reading the response body failed",
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed before the body ended",
                    ),
                });
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, ReadFraming::Ended)
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            ReadFraming::Length(remaining) => SizeHint::with_exact(remaining),
            ReadFraming::Ended => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl fmt::Debug for Http1Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http1Body").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::Request;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;
    use crate::upstream::BodyError;

    fn pool() -> (Http1Pool, Arc<Mutex<Vec<&'static str>>>) {
        let rejections = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&rejections);
        let observer: ResponseRejectionObserver =
            Arc::new(move |reason| seen.lock().unwrap().push(reason));
        let pool = Http1Pool::new(Duration::from_secs(2), Duration::from_secs(30), observer);
        (pool, rejections)
    }

    fn empty() -> RequestBody {
        Empty::new().map_err(|never| match never {}).boxed_unsync()
    }

    fn full(text: &'static str) -> RequestBody {
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    fn parts(method: Method, uri: &str) -> Parts {
        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri.parse().unwrap();
        request.into_parts().0
    }

    async fn send(
        pool: &Http1Pool,
        method: Method,
        uri: &str,
        body: RequestBody,
    ) -> Result<(StatusCode, String), Http1Error> {
        let response = pool
            .send(parts(method, uri), body, Duration::from_millis(10), |_| {})
            .await?;
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Ok((status, String::from_utf8(bytes.to_vec()).unwrap()))
    }

    /// Reads one request head from `stream` and returns it, or what arrived before the end
    /// of the stream.
    async fn read_request_head(stream: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    /// Sends a complete `200 OK` response with the body `ok`.
    async fn respond_ok(stream: &mut TcpStream) {
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
    }

    /// Starts an app on a loopback port that runs `script` on each accepted connection, with
    /// the connection's index. Returns the base URI and the count of accepted connections.
    async fn app<F, Fut>(script: F) -> (String, Arc<AtomicUsize>)
    where
        F: Fn(usize, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let index = count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(script(index, stream));
            }
        });
        (base, accepted)
    }

    #[test]
    fn head_gets_host_and_own_framing() {
        let mut request = parts(Method::POST, "http://app:8081/orders?x=1");
        request
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("99"));
        request
            .headers
            .insert(TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        request
            .headers
            .insert("x-user", HeaderValue::from_static("peter"));
        let authority = request.uri.authority().unwrap().clone();

        let head = encode_head(&request, &authority, RequestFraming::Length(5));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /orders?x=1 HTTP/1.1\r\nhost: app:8081\r\nx-user: peter\r\ncontent-length: 5\r\n\r\n"
        );

        let head = encode_head(&request, &authority, RequestFraming::Chunked);
        let head = String::from_utf8(head).unwrap();
        assert!(
            head.ends_with("x-user: peter\r\ntransfer-encoding: chunked\r\n\r\n"),
            "{head}"
        );
    }

    #[test]
    fn empty_body_declared_only_where_expected() {
        let get = parts(Method::GET, "http://app/a");
        let authority = get.uri.authority().unwrap().clone();
        let head = String::from_utf8(encode_head(&get, &authority, RequestFraming::Empty)).unwrap();
        assert_eq!(head, "GET /a HTTP/1.1\r\nhost: app\r\n\r\n");

        let mut post = parts(Method::POST, "http://app/a");
        post.headers
            .insert(HOST, HeaderValue::from_static("orders"));
        let head =
            String::from_utf8(encode_head(&post, &authority, RequestFraming::Empty)).unwrap();
        assert_eq!(
            head,
            "POST /a HTTP/1.1\r\nhost: orders\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn connection_reused_after_each_body_kind() {
        let (base, accepted) = app(|_, mut stream| async move {
            let replies: [&[u8]; 4] = [
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n",
                b"HTTP/1.1 204 No Content\r\n\r\n",
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nz",
            ];
            for (index, reply) in replies.into_iter().enumerate() {
                read_request_head(&mut stream).await;
                stream.write_all(reply).await.unwrap();
                if index == 1 {
                    // The rest of the chunked body comes later, split inside the framing.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    stream.write_all(b"2\r\nde\r").await.unwrap();
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    stream.write_all(b"\n0\r\n\r\n").await.unwrap();
                }
            }
        })
        .await;
        let (pool, rejections) = pool();
        let uri = format!("{base}/a");

        let first = send(&pool, Method::GET, &uri, empty()).await.unwrap();
        let chunked = send(&pool, Method::GET, &uri, empty()).await.unwrap();
        let no_content = send(&pool, Method::GET, &uri, empty()).await.unwrap();
        let after_interim = send(&pool, Method::GET, &uri, empty()).await.unwrap();

        assert_eq!(first, (StatusCode::OK, "ok".to_owned()));
        assert_eq!(chunked, (StatusCode::OK, "abcde".to_owned()));
        assert_eq!(no_content, (StatusCode::NO_CONTENT, String::new()));
        assert_eq!(after_interim, (StatusCode::OK, "z".to_owned()));
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert!(rejections.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn closed_pooled_connection_replaced() {
        // Each connection serves one request and then closes, without `Connection: close`.
        let (base, accepted) = app(|_, mut stream| async move {
            read_request_head(&mut stream).await;
            respond_ok(&mut stream).await;
        })
        .await;
        let (pool, _) = pool();
        let uri = format!("{base}/a");

        for _ in 0..3 {
            assert_eq!(
                send(&pool, Method::GET, &uri, empty()).await.unwrap().0,
                StatusCode::OK
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn sweep_drops_connection_closed_by_app() {
        let (base, _) = app(|_, mut stream| async move {
            read_request_head(&mut stream).await;
            respond_ok(&mut stream).await;
            // Closes the idle connection after a moment, as an app's idle timeout does.
            tokio::time::sleep(Duration::from_millis(50)).await;
        })
        .await;
        let (pool, _) = pool();
        send(&pool, Method::GET, &format!("{base}/a"), empty())
            .await
            .unwrap();

        assert!(pool.shared.sweep(), "the open connection is kept");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!pool.shared.sweep(), "the closed connection is dropped");
        assert!(pool.shared.idle.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn lost_request_retried_when_replayable() {
        // The first connection serves one request, then reads the next one and closes without
        // a response, as an app that timed the connection out at that moment would.
        let (base, accepted) = app(|index, mut stream| async move {
            read_request_head(&mut stream).await;
            respond_ok(&mut stream).await;
            if index == 0 {
                read_request_head(&mut stream).await;
                return;
            }
            while !read_request_head(&mut stream).await.is_empty() {
                respond_ok(&mut stream).await;
            }
        })
        .await;
        let (pool, _) = pool();
        let uri = format!("{base}/a");

        send(&pool, Method::GET, &uri, empty()).await.unwrap();
        let retried = send(&pool, Method::GET, &uri, empty()).await;

        assert_eq!(retried.unwrap(), (StatusCode::OK, "ok".to_owned()));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn lost_post_fails_without_retry() {
        let (base, accepted) = app(|_, mut stream| async move {
            read_request_head(&mut stream).await;
            respond_ok(&mut stream).await;
            read_request_head(&mut stream).await;
        })
        .await;
        let (pool, _) = pool();
        let uri = format!("{base}/a");

        send(&pool, Method::GET, &uri, empty()).await.unwrap();
        let err = send(&pool, Method::POST, &uri, full("order"))
            .await
            .expect_err("a POST is not sent twice");

        assert_eq!(err.kind(), FailureKind::Protocol, "{err}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    /// Adapts a channel receiver into a stream of body frames.
    fn frames_from(
        mut receiver: tokio::sync::mpsc::Receiver<Result<Frame<Bytes>, BodyError>>,
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BodyError>> {
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }

    #[tokio::test]
    async fn early_success_still_gets_whole_body() {
        // The app responds as soon as the head arrives and reads the body afterwards. The
        // response goes on at once and a task sends the rest of the body.
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&received);
        let (base, accepted) = app(move |_, mut stream| {
            let seen = Arc::clone(&seen);
            async move {
                read_request_head(&mut stream).await;
                respond_ok(&mut stream).await;
                let mut body = vec![0; 10];
                stream.read_exact(&mut body).await.unwrap();
                seen.lock().unwrap().extend_from_slice(&body);
                read_request_head(&mut stream).await;
                respond_ok(&mut stream).await;
            }
        })
        .await;
        let (pool, _) = pool();
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        sender
            .send(Ok(Frame::data(Bytes::from_static(b"first"))))
            .await
            .unwrap();
        let body = StreamBody::new(frames_from(receiver)).boxed_unsync();
        let mut request = parts(Method::POST, &format!("{base}/a"));
        request
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from_static("10"));
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            sender
                .send(Ok(Frame::data(Bytes::from_static(b"later"))))
                .await
                .unwrap();
        });

        let response = pool
            .send(request, exact_size(body, 10), Duration::ZERO, |_| {})
            .await
            .unwrap();
        let text = response.into_body().collect().await.unwrap().to_bytes();
        late.await.unwrap();
        for _ in 0..200 {
            if received.lock().unwrap().len() == 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let second = send(&pool, Method::GET, &format!("{base}/b"), empty()).await;

        assert_eq!(&text[..], b"ok");
        assert_eq!(*received.lock().unwrap(), b"firstlater");
        assert_eq!(second.unwrap().0, StatusCode::OK);
        // The response ended while the body was still on its way, so that connection was
        // closed instead of pooled.
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    /// Gives `body` an exact size hint of `length`, as a request with `Content-Length` has.
    fn exact_size(body: RequestBody, length: u64) -> RequestBody {
        struct Sized(RequestBody, u64);
        impl Body for Sized {
            type Data = Bytes;
            type Error = BodyError;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
                Pin::new(&mut self.0).poll_frame(cx)
            }
            fn size_hint(&self) -> SizeHint {
                SizeHint::with_exact(self.1)
            }
        }
        Sized(body, length).boxed_unsync()
    }

    #[tokio::test]
    async fn chunked_request_body_encoded() {
        let (base, _) = app(|_, mut stream| async move {
            let head = read_request_head(&mut stream).await;
            let mut body = Vec::new();
            while !body.ends_with(b"0\r\n\r\n") {
                let mut chunk = [0; 256];
                let read = stream.read(&mut chunk).await.unwrap();
                if read == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..read]);
            }
            let echo = format!("{head}{}", String::from_utf8(body).unwrap());
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{echo}",
                echo.len()
            );
            stream.write_all(response.as_bytes()).await.unwrap();
        })
        .await;
        let (pool, _) = pool();
        let frames = [
            Ok::<_, BodyError>(Frame::data(Bytes::from_static(b"hello"))),
            Ok(Frame::data(Bytes::from_static(b", app"))),
        ];
        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync();

        let (status, echo) = send(&pool, Method::POST, &format!("{base}/a"), body)
            .await
            .unwrap();

        assert_eq!(status, StatusCode::OK);
        assert!(echo.contains("transfer-encoding: chunked\r\n"), "{echo}");
        assert!(
            echo.ends_with("\r\n\r\n5\r\nhello\r\n5\r\n, app\r\n0\r\n\r\n"),
            "{echo}"
        );
    }

    #[tokio::test]
    async fn invalid_chunk_fails_body_and_closes_connection() {
        let (base, accepted) = app(|index, mut stream| async move {
            read_request_head(&mut stream).await;
            let reply: &[u8] = if index == 0 {
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            };
            stream.write_all(reply).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
        })
        .await;
        let (pool, rejections) = pool();
        let uri = format!("{base}/a");

        let response = pool
            .send(parts(Method::GET, &uri), empty(), Duration::ZERO, |_| {})
            .await
            .unwrap();
        let failed = response.into_body().collect().await;
        let second = send(&pool, Method::GET, &uri, empty()).await.unwrap();

        assert!(
            failed.is_err(),
            "the body ends in an error at the bad chunk"
        );
        assert_eq!(second.0, StatusCode::OK);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(*rejections.lock().unwrap(), vec!["chunk_size"]);
    }

    #[tokio::test]
    async fn early_response_passed_on_before_body_ends() {
        // A rejection the app sends without reading the body, and a success that it streams
        // while the body is still coming, as a full-duplex endpoint does. Envoy and HAProxy
        // pass either head on at once.
        let replies: [&'static [u8]; 2] = [
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        ];
        for reply in replies {
            let (base, _) = app(move |_, mut stream| async move {
                read_request_head(&mut stream).await;
                stream.write_all(reply).await.unwrap();
                // Keeps the connection open without reading the body.
                tokio::time::sleep(Duration::from_secs(5)).await;
            })
            .await;
            let (pool, _) = pool();
            // A body that never ends: only the early response can finish the exchange.
            let (sender, receiver) = tokio::sync::mpsc::channel(1);
            sender
                .send(Ok(Frame::data(Bytes::from_static(b"part"))))
                .await
                .unwrap();
            let body = StreamBody::new(frames_from(receiver)).boxed_unsync();
            let request = parts(Method::POST, &format!("{base}/a"));

            let response = tokio::time::timeout(
                Duration::from_secs(2),
                pool.send(request, body, Duration::ZERO, |_| {}),
            )
            .await
            .expect("the head was passed on before the body ended")
            .unwrap();

            let expected = std::str::from_utf8(&reply[9..12]).unwrap();
            assert_eq!(response.status().as_str(), expected);
            drop(sender);
        }
    }

    #[tokio::test]
    async fn early_rejection_survives_app_close() {
        // The app rejects a large upload with `413` and `Connection: close`, then closes the
        // socket without reading the body, as many servers do. The kernel then resets the
        // connection, so the body write fails while the 413 is already readable.
        let mut outcomes = Vec::new();
        for _ in 0..20 {
            let (base, _) = app(|_, mut stream| async move {
                read_request_head(&mut stream).await;
                stream
                    .write_all(
                        b"HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
                    )
                    .await
                    .unwrap();
            })
            .await;
            let (pool, _) = pool();
            // 64 MiB in 64 KiB frames: more than the socket buffers hold.
            let frames = (0..1024)
                .map(|_| Ok::<_, BodyError>(Frame::data(Bytes::from(vec![b'x'; 64 * 1024]))));
            let body = StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync();
            let request = parts(Method::POST, &format!("{base}/upload"));

            let result = tokio::time::timeout(
                Duration::from_secs(5),
                pool.send(request, body, Duration::ZERO, |_| {}),
            )
            .await
            .expect("the exchange ended");
            outcomes.push(match result {
                Ok(response) => response.status().to_string(),
                Err(err) => err.to_string(),
            });
        }

        let lost: Vec<&String> = outcomes
            .iter()
            .filter(|outcome| !outcome.starts_with("413"))
            .collect();
        assert!(
            lost.is_empty(),
            "{} of 20 lost the 413: {lost:?}",
            lost.len()
        );
    }
}
