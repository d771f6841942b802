//! The strict message head parser: request line or status line, header fields and the body
//! framing they declare. It checks each line once as bytes arrive, so a head sent one byte
//! at a time costs linear time.

use super::{all_field_value_bytes, all_tchar, quote, HeadLimits, Rejection, RejectionReason};

/// Body framing declared by a message head (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither `Content-Length` nor `Transfer-Encoding` on a request, or
    /// `Content-Length: 0`.
    None,
    /// Exactly this many bytes (more than zero).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// A response with neither field: the body runs until the connection closes.
    UntilClose,
}

/// Whether a parser reads requests or responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Response,
}

impl MessageKind {
    fn noun(self) -> &'static str {
        match self {
            MessageKind::Request => "request",
            MessageKind::Response => "response",
        }
    }
}

/// A complete message head that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes from the first byte of the head to the end of its empty last line.
    pub len: usize,
    pub framing: BodyFraming,
    /// Whether the connection ends after this message: `Connection: close`, or HTTP/1.0
    /// without `Connection: keep-alive`.
    pub close: bool,
    /// The status code of a response; `None` for a request.
    pub status: Option<u16>,
    /// Whether a request's method is HEAD, whose response has no body.
    pub head_method: bool,
}

/// The result of feeding bytes to a [`HeadParser`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadParse {
    /// Every complete line so far is valid; the head needs more bytes.
    Incomplete,
    Complete(RequestHead),
    Rejected(Rejection),
}

/// Parses one message head incrementally.
#[derive(Debug, Clone)]
pub struct HeadParser {
    kind: MessageKind,
    limits: HeadLimits,
    /// Offset of the first line not checked yet.
    line_start: usize,
    seen_request_line: bool,
    http10: bool,
    fields: usize,
    content_length: Option<u64>,
    chunked: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    status: Option<u16>,
    head_method: bool,
}

impl HeadParser {
    /// Creates a parser for a request head.
    pub fn new(limits: HeadLimits) -> HeadParser {
        HeadParser::for_kind(MessageKind::Request, limits)
    }

    /// Creates a parser for a request or response head.
    pub fn for_kind(kind: MessageKind, limits: HeadLimits) -> HeadParser {
        HeadParser {
            kind,
            limits,
            line_start: 0,
            seen_request_line: false,
            http10: false,
            fields: 0,
            content_length: None,
            chunked: false,
            connection_close: false,
            connection_keep_alive: false,
            status: None,
            head_method: false,
        }
    }

    /// Checks the lines of `head` that were not checked by an earlier call. `head` contains
    /// every byte received for this head so far, starting with its first byte, and grows
    /// from call to call.
    pub fn feed(&mut self, head: &[u8]) -> HeadParse {
        loop {
            let rest = &head[self.line_start..];
            let Some(newline) = memchr::memchr(b'\n', rest) else {
                return match self.check_limits(rest, head.len()) {
                    Some(rejection) => HeadParse::Rejected(rejection),
                    None => HeadParse::Incomplete,
                };
            };
            // Limits come before syntax, so the result does not depend on how the bytes
            // arrived: a partial line over a limit is rejected for it before its end arrives.
            if let Some(rejection) =
                self.check_limits(&rest[..newline], self.line_start + newline + 1)
            {
                return HeadParse::Rejected(rejection);
            }
            if newline == 0 || rest[newline - 1] != b'\r' {
                return HeadParse::Rejected(Rejection::new(
                    RejectionReason::LineEnding,
                    format!(
                        "the {} head has a line ending in a bare LF; lines must end in CRLF",
                        self.kind.noun()
                    ),
                ));
            }
            let line = &rest[..newline - 1];
            if memchr::memchr(b'\r', line).is_some() {
                return HeadParse::Rejected(Rejection::new(
                    RejectionReason::LineEnding,
                    format!("the {} head contains a bare CR", self.kind.noun()),
                ));
            }
            self.line_start += newline + 1;

            let checked = if !self.seen_request_line {
                // RFC 9112 section 2.2: a server should ignore empty lines before the
                // request line, which some clients send after a body.
                if line.is_empty() && self.kind == MessageKind::Request {
                    continue;
                }
                match self.kind {
                    MessageKind::Request => self.parse_request_line(line),
                    MessageKind::Response => self.parse_status_line(line),
                }
            } else if line.is_empty() {
                return self.finish();
            } else {
                self.parse_field_line(line)
            };
            if let Err(rejection) = checked {
                return HeadParse::Rejected(rejection);
            }
        }
    }

    /// Returns the limit that `line`, the line being checked, breaks: a request target over
    /// `max_uri_bytes` while it is the request line, or a head of `head_len` bytes so far
    /// over `max_head_bytes`. `line` may be partial.
    fn check_limits(&self, line: &[u8], head_len: usize) -> Option<Rejection> {
        if !self.seen_request_line && self.kind == MessageKind::Request {
            if let Some(space) = line.iter().position(|&byte| byte == b' ') {
                let target = line[space + 1..]
                    .split(|&byte| byte == b' ')
                    .next()
                    .unwrap_or_default();
                if target.len() > self.limits.max_uri_bytes {
                    return Some(uri_too_long(self.limits.max_uri_bytes));
                }
            }
        }
        if head_len > self.limits.max_head_bytes {
            return Some(head_too_large(self.limits.max_head_bytes));
        }
        None
    }

    /// Checks `method SP request-target SP HTTP-version` with single spaces.
    fn parse_request_line(&mut self, line: &[u8]) -> Result<(), Rejection> {
        let mut parts = line.splitn(3, |&byte| byte == b' ');
        let method = parts.next().unwrap_or_default();
        let target = parts.next().unwrap_or_default();
        let version = parts.next();

        if method.is_empty() || !all_tchar(method) {
            return Err(Rejection::new(
                RejectionReason::StartLine,
                format!("the request method {} is not a token", quote(method)),
            ));
        }
        let Some(version) = version else {
            return Err(Rejection::new(
                RejectionReason::StartLine,
                "the request line must be `method target HTTP/1.1` with single spaces",
            ));
        };
        if target.is_empty() || !target.iter().all(|&byte| is_target_byte(byte)) {
            return Err(Rejection::new(RejectionReason::StartLine, format!(
                "the request target {} is empty or contains a space, `#`, a control character or a byte outside ASCII",
                quote(target)
            )));
        }

        self.http10 = match version {
            b"HTTP/1.1" => false,
            b"HTTP/1.0" => true,
            [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                if major.is_ascii_digit() && minor.is_ascii_digit() =>
            {
                return Err(Rejection::new(
                    RejectionReason::HttpVersion,
                    format!(
                        "HTTP version {} is not supported on HTTP/1 connections; use HTTP/1.1",
                        quote(version)
                    ),
                ));
            }
            _ => {
                return Err(Rejection::new(
                    RejectionReason::StartLine,
                    format!(
                        "the request line ends in {}, not a single space and HTTP/1.1",
                        quote(version)
                    ),
                ))
            }
        };
        self.head_method = method == b"HEAD";
        self.seen_request_line = true;
        Ok(())
    }

    /// Checks `HTTP-version SP status-code [SP reason-phrase]`. The space before an empty
    /// reason is optional, as many servers leave it out.
    fn parse_status_line(&mut self, line: &[u8]) -> Result<(), Rejection> {
        let invalid = || {
            Rejection::new(
                RejectionReason::StartLine,
                format!(
                    "the status line {} is not `HTTP/1.1 code reason`",
                    quote(line)
                ),
            )
        };
        let (version, rest) = line.split_at_checked(8).ok_or_else(invalid)?;
        self.http10 = match version {
            b"HTTP/1.1" => false,
            b"HTTP/1.0" => true,
            _ => return Err(invalid()),
        };
        let [b' ', digits @ ..] = rest else {
            return Err(invalid());
        };
        let (code, reason) = digits.split_at_checked(3).ok_or_else(invalid)?;
        if !code.iter().all(u8::is_ascii_digit) || code[0] == b'0' {
            return Err(invalid());
        }
        match reason {
            [] => {}
            [b' ', text @ ..] if all_field_value_bytes(text) => {}
            _ => return Err(invalid()),
        }
        self.status = Some(
            code.iter()
                .fold(0u16, |total, digit| total * 10 + u16::from(digit - b'0')),
        );
        self.seen_request_line = true;
        Ok(())
    }

    /// Checks `field-name ":" OWS field-value OWS` and records the framing fields.
    fn parse_field_line(&mut self, line: &[u8]) -> Result<(), Rejection> {
        let (name, value) = split_field_line(line)?;
        self.fields += 1;
        if self.fields > self.limits.max_headers {
            return Err(Rejection::new(
                RejectionReason::TooManyHeaders,
                format!(
                    "the {} has more than {} header fields",
                    self.kind.noun(),
                    self.limits.max_headers
                ),
            ));
        }

        if name.eq_ignore_ascii_case(b"content-length") {
            if self.content_length.is_some() {
                return Err(Rejection::new(
                    RejectionReason::ContentLength,
                    format!(
                        "the {} has more than one Content-Length field",
                        self.kind.noun()
                    ),
                ));
            }
            self.content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if self.chunked {
                return Err(Rejection::new(
                    RejectionReason::TransferEncoding,
                    format!(
                        "the {} has more than one Transfer-Encoding field",
                        self.kind.noun()
                    ),
                ));
            }
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(Rejection::new(RejectionReason::TransferEncoding, format!(
                    "Transfer-Encoding {} is not supported; the only accepted value is exactly `chunked`, with no other coding and no trailing whitespace",
                    quote(value)
                )));
            }
            self.chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&byte| byte == b',') {
                let option = trim_ows_end(trim_ows(option));
                if option.eq_ignore_ascii_case(b"close") {
                    self.connection_close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    self.connection_keep_alive = true;
                }
            }
        }
        Ok(())
    }

    /// Decides the framing once the empty line that ends the head has arrived.
    fn finish(&self) -> HeadParse {
        let noun = self.kind.noun();
        if self.chunked && self.content_length.is_some() {
            return HeadParse::Rejected(Rejection::new(RejectionReason::AmbiguousLength, format!(
                "the {noun} has both Content-Length and Transfer-Encoding, so its length is ambiguous"
            )));
        }
        if self.chunked && self.http10 {
            return HeadParse::Rejected(Rejection::new(
                RejectionReason::TransferEncoding,
                format!("Transfer-Encoding is not allowed in HTTP/1.0 {noun}s"),
            ));
        }
        let framing = match (self.chunked, self.content_length) {
            (true, _) => BodyFraming::Chunked,
            (false, None) if self.kind == MessageKind::Response => BodyFraming::UntilClose,
            (false, None | Some(0)) => BodyFraming::None,
            (false, Some(length)) => {
                if let Some(max) = self.limits.max_body_bytes {
                    if length > max {
                        return HeadParse::Rejected(body_too_large(max));
                    }
                }
                BodyFraming::Length(length)
            }
        };
        HeadParse::Complete(RequestHead {
            len: self.line_start,
            framing,
            close: self.connection_close || (self.http10 && !self.connection_keep_alive),
            status: self.status,
            head_method: self.head_method,
        })
    }
}

/// Splits a header or trailer field line into its name and its value without leading
/// whitespace. Trailing whitespace stays in the value, where only the framing fields reject
/// it.
pub(super) fn split_field_line(line: &[u8]) -> Result<(&[u8], &[u8]), Rejection> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(Rejection::new(
            RejectionReason::ObsFold,
            "a field line starts with whitespace (obs-fold line folding), which is not allowed",
        ));
    }
    let Some(colon) = memchr::memchr(b':', line) else {
        return Err(Rejection::new(
            RejectionReason::FieldSyntax,
            format!("the field line {} has no colon", quote(line)),
        ));
    };
    let name = &line[..colon];
    if name.is_empty() || !all_tchar(name) {
        return Err(Rejection::new(
            RejectionReason::FieldSyntax,
            format!(
                "the field name {} is not a token (whitespace before the colon is not allowed)",
                quote(name)
            ),
        ));
    }
    let value = trim_ows(&line[colon + 1..]);
    if !all_field_value_bytes(value) {
        return Err(Rejection::new(
            RejectionReason::FieldSyntax,
            format!(
                "the value of field {} contains a control character",
                quote(name)
            ),
        ));
    }
    Ok((name, value))
}

/// Removes leading optional whitespace, which HTTP defines as spaces and tabs only (RFC 9110
/// section 5.6.3). `trim_ascii_start` would also remove form feeds, which httparse rejects.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&byte| byte != b' ' && byte != b'\t')
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_ows_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&byte| byte != b' ' && byte != b'\t')
        .map_or(0, |last| last + 1);
    &bytes[..end]
}

/// Parses a `Content-Length` value: digits only, with no sign, list, space or trailing
/// whitespace, that fits in 64 bits.
fn parse_content_length(value: &[u8]) -> Result<u64, Rejection> {
    let invalid = || {
        Rejection::new(
            RejectionReason::ContentLength,
            format!(
                "Content-Length {} is not a plain decimal number",
                quote(value)
            ),
        )
    };
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    value.iter().try_fold(0u64, |total, &digit| {
        total
            .checked_mul(10)
            .and_then(|total| total.checked_add(u64::from(digit - b'0')))
            .ok_or_else(invalid)
    })
}

/// The request target bytes the guard lets through: visible ASCII except `#`, which starts a
/// fragment that clients must not send.
fn is_target_byte(byte: u8) -> bool {
    matches!(byte, b'!'..=b'~') && byte != b'#'
}

fn head_too_large(max: usize) -> Rejection {
    Rejection::new(
        RejectionReason::HeadTooLarge,
        format!("the request head is larger than {max} bytes"),
    )
}

fn uri_too_long(max: usize) -> Rejection {
    Rejection::new(
        RejectionReason::UriTooLong,
        format!("the request target is longer than {max} bytes"),
    )
}

pub(super) fn body_too_large(max: u64) -> Rejection {
    Rejection::new(
        RejectionReason::BodyTooLarge,
        format!("the request body is larger than {max} bytes"),
    )
}
