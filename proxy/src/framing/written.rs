//! [`WrittenRequests`]: follows the requests an HTTP client writes upstream, so the
//! [`ResponseGuard`](super::ResponseGuard) can tell which responses are to a HEAD request
//! and so have no body.
//!
//! The requests are hyper's own output, built from header maps that hold only valid names
//! and values, so a full syntax check would only repeat hyper's work. The follower reads
//! what it needs and nothing more: where each head ends, whether its method is HEAD, and
//! the body framing it declares. Anything it cannot follow unambiguously is an error, and
//! the guard then fails the connection.

use std::collections::VecDeque;

use super::{BodyFraming, ChunkProgress, ChunkedBody, HeadLimits};

/// Maximum bytes of a request head buffered while it arrives in parts.
const MAX_WRITTEN_HEAD_BYTES: usize = 4 * 1024 * 1024;

/// Limits for the trailer section of a chunked request body written upstream.
const WRITTEN_TRAILER_LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: MAX_WRITTEN_HEAD_BYTES,
    max_uri_bytes: MAX_WRITTEN_HEAD_BYTES,
    max_headers: 10_000,
    max_body_bytes: None,
};

/// The part of a written request the follower expects next.
enum Phase {
    Head,
    Length(u64),
    Chunked(ChunkedBody),
}

/// Follows written requests across writes of any size.
pub(super) struct WrittenRequests {
    /// The start of a head that was written in parts; empty between heads.
    partial: Vec<u8>,
    phase: Phase,
}

/// The facts a complete written head declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WrittenHead {
    /// Bytes from the start of the head to the end of its empty last line.
    len: usize,
    head_method: bool,
    framing: BodyFraming,
}

impl WrittenRequests {
    pub fn new() -> WrittenRequests {
        WrittenRequests {
            partial: Vec::new(),
            phase: Phase::Head,
        }
    }

    /// Follows `bytes`, the next bytes written, and appends to `methods` whether each
    /// request whose head completes in them is HEAD. Returns why the stream cannot be
    /// followed, after which the caller must stop using it.
    pub fn observe(
        &mut self,
        mut bytes: &[u8],
        methods: &mut VecDeque<bool>,
    ) -> Result<(), String> {
        while !bytes.is_empty() {
            match &mut self.phase {
                Phase::Head if self.partial.is_empty() => match scan_head(bytes)? {
                    Some(head) => {
                        methods.push_back(head.head_method);
                        self.phase = body_phase(head.framing);
                        bytes = &bytes[head.len..];
                    }
                    None => {
                        check_partial_size(bytes.len())?;
                        self.partial.extend_from_slice(bytes);
                        return Ok(());
                    }
                },
                Phase::Head => {
                    // Only the last three bytes already held can begin the empty line.
                    let search_from = self.partial.len().saturating_sub(3);
                    self.partial.extend_from_slice(bytes);
                    let Some(len) = find_head_end(&self.partial, search_from) else {
                        return check_partial_size(self.partial.len());
                    };
                    let head = scan_head(&self.partial[..len])?
                        .ok_or_else(|| "a request head written upstream has no end".to_owned())?;
                    methods.push_back(head.head_method);
                    self.phase = body_phase(head.framing);
                    // The bytes after the head were part of `bytes`: follow them from there.
                    let rest = self.partial.len() - head.len;
                    bytes = &bytes[bytes.len() - rest..];
                    self.partial.clear();
                }
                Phase::Length(remaining) => {
                    let skipped = (*remaining).min(bytes.len() as u64);
                    *remaining -= skipped;
                    // `skipped` is at most `bytes.len()`, a usize.
                    bytes = &bytes[skipped as usize..];
                    if *remaining == 0 {
                        self.phase = Phase::Head;
                    }
                }
                Phase::Chunked(body) => match body.feed(bytes) {
                    Ok(ChunkProgress::NeedMore) => return Ok(()),
                    Ok(ChunkProgress::Done(count)) => {
                        bytes = &bytes[count..];
                        self.phase = Phase::Head;
                    }
                    Err(rejection) => {
                        return Err(format!(
                            "a request body written upstream could not be followed: {}",
                            rejection.message
                        ))
                    }
                },
            }
        }
        Ok(())
    }
}

fn body_phase(framing: BodyFraming) -> Phase {
    match framing {
        BodyFraming::Length(length) => Phase::Length(length),
        BodyFraming::Chunked => Phase::Chunked(ChunkedBody::new(WRITTEN_TRAILER_LIMITS)),
        BodyFraming::None | BodyFraming::UntilClose => Phase::Head,
    }
}

fn check_partial_size(len: usize) -> Result<(), String> {
    if len > MAX_WRITTEN_HEAD_BYTES {
        return Err(format!(
            "a request head written upstream is longer than {MAX_WRITTEN_HEAD_BYTES} bytes"
        ));
    }
    Ok(())
}

/// Returns the length of the head at the start of `bytes`, through its empty last line,
/// looking for that line's end from `from` on.
fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    memchr::memchr_iter(b'\n', &bytes[from..])
        .map(|offset| from + offset)
        .find(|&newline| newline >= 3 && &bytes[newline - 3..newline] == b"\r\n\r")
        .map(|newline| newline + 1)
}

/// Reads the head at the start of `bytes`: `None` while its empty last line has not been
/// written yet.
fn scan_head(bytes: &[u8]) -> Result<Option<WrittenHead>, String> {
    let mut content_length = None;
    let mut chunked = None;
    let mut request_line = None;
    let mut line_start = 0;
    for newline in memchr::memchr_iter(b'\n', bytes) {
        let line = &bytes[line_start..newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        line_start = newline + 1;
        if request_line.is_none() {
            request_line = Some(line);
            continue;
        }
        if line.is_empty() {
            let framing = match (content_length, chunked) {
                (Some(_), Some(_)) => {
                    return Err(unfollowable("both Content-Length and Transfer-Encoding"));
                }
                (None, Some(_)) => BodyFraming::Chunked,
                (Some(0), None) | (None, None) => BodyFraming::None,
                (Some(length), None) => BodyFraming::Length(length),
            };
            return Ok(Some(WrittenHead {
                len: line_start,
                head_method: request_line.is_some_and(|line| line.starts_with(b"HEAD ")),
                framing,
            }));
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return Err(unfollowable("a field line without a colon"));
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_length(value)
                .ok_or_else(|| unfollowable("a Content-Length that is not a number"))?;
            if content_length.replace(length).is_some() {
                return Err(unfollowable("more than one Content-Length"));
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value
                .rsplit(|&byte| byte == b',')
                .next()
                .map(<[u8]>::trim_ascii);
            let is_chunked = last.is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked"));
            if !is_chunked || chunked.replace(true).is_some() {
                return Err(unfollowable(
                    "a Transfer-Encoding other than one that ends in chunked",
                ));
            }
        }
    }
    Ok(None)
}

fn unfollowable(problem: &str) -> String {
    format!("a request written upstream could not be followed: it has {problem}")
}

/// Parses plain decimal digits, as hyper writes a length.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follow(writes: &[&[u8]]) -> Result<Vec<bool>, String> {
        let mut follower = WrittenRequests::new();
        let mut methods = VecDeque::new();
        for bytes in writes {
            follower.observe(bytes, &mut methods)?;
        }
        Ok(methods.into_iter().collect())
    }

    const GET: &[u8] = b"GET /a HTTP/1.1\r\nhost: app\r\n\r\n";
    const HEAD: &[u8] = b"HEAD /a HTTP/1.1\r\nhost: app\r\n\r\n";

    #[test]
    fn methods_in_order_within_one_write() {
        let stream = [GET, HEAD, GET].concat();
        assert_eq!(follow(&[&stream]).unwrap(), [false, true, false]);
    }

    #[test]
    fn head_split_at_every_byte() {
        let stream = [HEAD, GET].concat();
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(follow(&bytes).unwrap(), [true, false]);
    }

    #[test]
    fn bodies_are_skipped() {
        // A body that looks like a HEAD request must not count as one.
        let post =
            b"POST /a HTTP/1.1\r\ncontent-length: 31\r\n\r\nHEAD /a HTTP/1.1\r\nhost: app\r\n\r\n";
        let chunked =
            b"POST /a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n5\r\nHEAD \r\n0\r\n\r\n";
        let stream = [&post[..], chunked, GET].concat();
        assert_eq!(follow(&[&stream]).unwrap(), [false, false, false]);
        let pieces: Vec<&[u8]> = stream.chunks(7).collect();
        assert_eq!(follow(&pieces).unwrap(), [false, false, false]);
    }

    #[test]
    fn head_then_body_in_separate_writes() {
        let head = b"PUT /a HTTP/1.1\r\nContent-Length:  4 \r\n\r\n";
        assert_eq!(follow(&[head, b"HEAD", HEAD]).unwrap(), [false, true]);
    }

    #[test]
    fn ambiguous_framing_rejected() {
        for head in [
            &b"POST / HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nbroken line\r\n\r\n",
        ] {
            let error = follow(&[head]).expect_err(&String::from_utf8_lossy(head));
            assert!(error.contains("could not be followed"), "{error}");
        }
    }

    #[test]
    fn bad_chunked_body_rejected() {
        let bytes = b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n";
        let error = follow(&[bytes]).unwrap_err();
        assert!(error.contains("body written upstream"), "{error}");
    }

    #[test]
    fn endless_head_rejected() {
        let mut follower = WrittenRequests::new();
        let mut methods = VecDeque::new();
        let piece = vec![b'a'; 1024 * 1024];
        let mut result = Ok(());
        for _ in 0..5 {
            result = follower.observe(&piece, &mut methods);
            if result.is_err() {
                break;
            }
        }
        assert!(result.unwrap_err().contains("longer than"));
    }
}
