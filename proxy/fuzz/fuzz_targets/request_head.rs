//! Fuzzes the strict HTTP/1 head parser and the chunked body tracker. Feeding a head in
//! pieces must give the same result as feeding it whole. Every head the parser accepts must
//! also parse to the same length in httparse, the parser hyper uses, so the guard and hyper
//! never disagree about where a message starts.
//!
//! The first input byte picks requests or responses (bit 0) and the piece size (the other
//! bits); the rest is the byte stream.
#![no_main]

use libfuzzer_sys::fuzz_target;

use portcullis::framing::{
    BodyFraming, ChunkProgress, ChunkedBody, HeadLimits, HeadParse, HeadParser, MessageKind,
};

const LIMITS: HeadLimits = HeadLimits {
    max_head_bytes: 8192,
    max_uri_bytes: 2048,
    max_headers: 64,
    max_body_bytes: Some(1 << 20),
};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let kind = if flags & 1 == 1 {
        MessageKind::Response
    } else {
        MessageKind::Request
    };
    let piece = usize::from(flags >> 1).max(1);

    let whole = HeadParser::for_kind(kind, LIMITS).feed(stream);
    let mut parser = HeadParser::for_kind(kind, LIMITS);
    let mut pieces = HeadParse::Incomplete;
    let mut end = 0;
    while end < stream.len() && pieces == HeadParse::Incomplete {
        end = (end + piece).min(stream.len());
        pieces = parser.feed(&stream[..end]);
    }
    assert_eq!(
        whole, pieces,
        "feeding in pieces of {piece} changed the result"
    );

    let HeadParse::Complete(head) = whole else {
        return;
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let parsed = match kind {
        MessageKind::Request => httparse::Request::new(&mut headers).parse(stream),
        MessageKind::Response => httparse::Response::new(&mut headers).parse(stream),
    };
    assert_eq!(
        parsed,
        Ok(httparse::Status::Complete(head.len)),
        "httparse reads the head differently"
    );

    if head.framing == BodyFraming::Chunked {
        let body = &stream[head.len..];
        let mut tracker = ChunkedBody::new(LIMITS);
        let whole = tracker.feed(body);
        let mut tracker = ChunkedBody::new(LIMITS);
        let mut result = Ok(ChunkProgress::NeedMore);
        let mut offset = 0;
        while offset < body.len() && result == Ok(ChunkProgress::NeedMore) {
            let next = (offset + piece).min(body.len());
            result = tracker
                .feed(&body[offset..next])
                .map(|progress| match progress {
                    ChunkProgress::Done(count) => ChunkProgress::Done(offset + count),
                    other => other,
                });
            offset = next;
        }
        assert_eq!(whole.map_err(|r| r.status), result.map_err(|r| r.status));
    }
});
