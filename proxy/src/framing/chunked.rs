//! Follows a chunked body (RFC 9112 section 7.1) byte by byte to find where it ends, and
//! rejects any chunk size line, chunk terminator or trailer section that a lenient parser
//! could read another way.

use super::head::{body_too_large, split_field_line};
use super::{is_field_value_byte, HeadLimits, Rejection, RejectionReason};

/// Longest chunk size line accepted, extensions included. Clients send extensions rarely and
/// short; the bound stops a line that never ends.
const MAX_CHUNK_LINE_BYTES: usize = 4096;
/// A `u64` holds 16 hex digits.
const MAX_SIZE_DIGITS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    Size,
    /// After the digits, inside spaces that must lead to `;`.
    SizeSpace,
    /// Inside chunk extensions, up to the CR.
    Extension,
    /// After the CR of a size line.
    SizeLf,
    /// Inside chunk data; this many bytes remain.
    Data(u64),
    /// After chunk data, expecting CR.
    DataCr,
    /// After chunk data and CR, expecting LF.
    DataLf,
    /// Inside the trailer section, collecting one field line.
    Trailer,
    /// After the CR that ends a trailer line (or the empty line).
    TrailerLf,
    Done,
}

/// The result of feeding bytes to a [`ChunkedBody`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkProgress {
    /// Every byte fed so far is valid and the body continues.
    NeedMore,
    /// The body ended; this many bytes of the last feed belong to it.
    Done(usize),
}

/// The state of one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedBody {
    limits: HeadLimits,
    state: State,
    size: u64,
    digits: usize,
    line_bytes: usize,
    /// The current trailer line, kept to check it once it ends.
    trailer_line: Vec<u8>,
    trailer_bytes: usize,
    trailer_fields: usize,
    data_total: u64,
}

impl ChunkedBody {
    pub fn new(limits: HeadLimits) -> ChunkedBody {
        ChunkedBody {
            limits,
            state: State::Size,
            size: 0,
            digits: 0,
            line_bytes: 0,
            trailer_line: Vec::new(),
            trailer_bytes: 0,
            trailer_fields: 0,
            data_total: 0,
        }
    }

    /// Returns how many chunk data bytes come next without any framing byte in between.
    pub fn data_remaining(&self) -> u64 {
        match self.state {
            State::Data(remaining) => remaining,
            _ => 0,
        }
    }

    /// Accounts for `count` chunk data bytes that were read without passing through
    /// [`ChunkedBody::feed`]. `count` must not exceed [`ChunkedBody::data_remaining`].
    pub fn consume_data(&mut self, count: u64) {
        if let State::Data(remaining) = self.state {
            let left = remaining.saturating_sub(count);
            self.state = if left == 0 {
                State::DataCr
            } else {
                State::Data(left)
            };
        }
    }

    /// Checks the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<ChunkProgress, Rejection> {
        let mut index = 0;
        while index < bytes.len() {
            if let State::Data(remaining) = self.state {
                let available = (bytes.len() - index) as u64;
                let taken = remaining.min(available);
                self.consume_data(taken);
                // `taken` is at most `available`, which came from a usize.
                index += taken as usize;
                continue;
            }
            let byte = bytes[index];
            index += 1;
            self.step(byte)?;
            if self.state == State::Done {
                return Ok(ChunkProgress::Done(index));
            }
        }
        Ok(ChunkProgress::NeedMore)
    }

    /// Advances the state machine by one framing byte.
    fn step(&mut self, byte: u8) -> Result<(), Rejection> {
        if matches!(
            self.state,
            State::Size | State::SizeSpace | State::Extension
        ) {
            self.line_bytes += 1;
            if self.line_bytes > MAX_CHUNK_LINE_BYTES {
                return Err(Rejection::new(
                    RejectionReason::ChunkSize,
                    format!("a chunk size line is longer than {MAX_CHUNK_LINE_BYTES} bytes"),
                ));
            }
        }
        match self.state {
            State::Size => match byte {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    self.digits += 1;
                    if self.digits > MAX_SIZE_DIGITS {
                        return Err(Rejection::new(
                            RejectionReason::ChunkSize,
                            "a chunk size has more than 16 hex digits",
                        ));
                    }
                    // The digit check above keeps the value within 64 bits.
                    let digit = u64::from(char::from(byte).to_digit(16).unwrap_or(0));
                    self.size = (self.size << 4) | digit;
                }
                _ if self.digits == 0 => return Err(invalid_size_line()),
                b';' => self.state = State::Extension,
                b' ' | b'\t' => self.state = State::SizeSpace,
                b'\r' => self.state = State::SizeLf,
                _ => return Err(invalid_size_line()),
            },
            State::SizeSpace => match byte {
                b' ' | b'\t' => {}
                b';' => self.state = State::Extension,
                _ => return Err(invalid_size_line()),
            },
            State::Extension => match byte {
                b'\r' => self.state = State::SizeLf,
                byte if is_field_value_byte(byte) => {}
                _ => return Err(invalid_size_line()),
            },
            State::SizeLf => {
                if byte != b'\n' {
                    return Err(invalid_size_line());
                }
                self.end_size_line()?;
            }
            State::Data(_) => {}
            State::DataCr | State::DataLf => {
                let expected = if self.state == State::DataCr {
                    b'\r'
                } else {
                    b'\n'
                };
                if byte != expected {
                    return Err(Rejection::new(
                        RejectionReason::ChunkData,
                        "chunk data is not followed by CRLF, so the chunk size is wrong",
                    ));
                }
                self.state = if self.state == State::DataCr {
                    State::DataLf
                } else {
                    State::Size
                };
            }
            State::Trailer => self.step_trailer(byte)?,
            State::TrailerLf => {
                if byte != b'\n' {
                    return Err(Rejection::new(
                        RejectionReason::LineEnding,
                        "the trailer section contains a bare CR",
                    ));
                }
                self.end_trailer_line()?;
            }
            State::Done => {}
        }
        Ok(())
    }

    /// Starts the data of the chunk whose size line just ended, or the trailer section after
    /// the last chunk.
    fn end_size_line(&mut self) -> Result<(), Rejection> {
        let size = self.size;
        self.size = 0;
        self.digits = 0;
        self.line_bytes = 0;
        if size == 0 {
            self.state = State::Trailer;
            return Ok(());
        }
        self.data_total = self.data_total.saturating_add(size);
        if let Some(max) = self.limits.max_body_bytes {
            if self.data_total > max {
                return Err(body_too_large(max));
            }
        }
        self.state = State::Data(size);
        Ok(())
    }

    fn step_trailer(&mut self, byte: u8) -> Result<(), Rejection> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.limits.max_head_bytes {
            return Err(Rejection::new(
                RejectionReason::HeadTooLarge,
                format!(
                    "the trailer section is larger than {} bytes",
                    self.limits.max_head_bytes
                ),
            ));
        }
        match byte {
            b'\r' => self.state = State::TrailerLf,
            b'\n' => {
                return Err(Rejection::new(
                    RejectionReason::LineEnding,
                    "the trailer section has a line ending in a bare LF",
                ))
            }
            _ => self.trailer_line.push(byte),
        }
        Ok(())
    }

    /// Checks the trailer line that just ended; an empty line ends the body.
    fn end_trailer_line(&mut self) -> Result<(), Rejection> {
        if self.trailer_line.is_empty() {
            self.state = State::Done;
            return Ok(());
        }
        split_field_line(&self.trailer_line)?;
        self.trailer_line.clear();
        self.trailer_fields += 1;
        if self.trailer_fields > self.limits.max_headers {
            return Err(Rejection::new(
                RejectionReason::TooManyHeaders,
                format!(
                    "the trailer section has more than {} fields",
                    self.limits.max_headers
                ),
            ));
        }
        self.state = State::Trailer;
        Ok(())
    }
}

fn invalid_size_line() -> Rejection {
    Rejection::new(
        RejectionReason::ChunkSize,
        "a chunk size line is invalid: it must be hex digits, optional `;` extensions, then CRLF",
    )
}
