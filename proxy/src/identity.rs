//! The identity headers the app trusts: client-sent copies are removed, verified values set.
//!
//! Value encoding, the same for every identity header:
//! - a string claim is sent as is; a number or boolean as its JSON text;
//! - an array of strings is joined with `,` when no element contains `,`, and sent as compact
//!   JSON otherwise (so `["a","b"]` becomes `a,b` but `["a,b"]` stays `["a,b"]`);
//! - an object, or an array holding anything but strings, is sent as compact JSON;
//! - a null claim is omitted, like a missing one;
//! - finally, `%`, control characters and every byte outside ASCII are percent-encoded
//!   (`%25`, `%0A`, UTF-8 bytes such as `%C3%A9`), so any claim fits in a header value and
//!   the app gets the exact text back by percent-decoding every identity header. Values made of
//!   printable ASCII without `%`, as subjects, scopes and issuers usually are, are unchanged.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::config::{ClaimHeader, IDENTITY_HEADER_PREFIX};
use crate::verify::VerifiedToken;

/// The token's `sub`.
pub const SUBJECT_HEADER: HeaderName = HeaderName::from_static("x-portcullis-subject");
/// The token's scopes, space-separated.
pub const SCOPE_HEADER: HeaderName = HeaderName::from_static("x-portcullis-scope");
/// The token's `client_id`.
pub const CLIENT_ID_HEADER: HeaderName = HeaderName::from_static("x-portcullis-client-id");
/// The token's `iss`.
pub const ISSUER_HEADER: HeaderName = HeaderName::from_static("x-portcullis-issuer");

/// The standard identity headers, in the order of the values in [`StandardValues`].
static STANDARD_HEADERS: [HeaderName; 4] = [
    SUBJECT_HEADER,
    SCOPE_HEADER,
    CLIENT_ID_HEADER,
    ISSUER_HEADER,
];

/// The standard identity header values of one token, rendered once and kept with it.
///
/// The four values share one buffer, which each request slices without copying.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StandardValues {
    text: Bytes,
    /// The end offset of each value in `text`, or `None` for a claim the token lacks. A value
    /// starts at the end of the previous present value.
    ends: [Option<u32>; 4],
}

impl StandardValues {
    /// Renders the standard identity header values of `token`.
    fn render(token: &VerifiedToken) -> StandardValues {
        let scopes = token.scopes().collect::<Vec<_>>().join(" ");
        let texts = [
            token.subject(),
            Some(scopes.as_str()),
            token.client_id(),
            Some(&*token.issuer),
        ];
        let mut text = Vec::with_capacity(texts.iter().flatten().map(|text| text.len()).sum());
        let ends = texts.map(|value| {
            value.map(|value| {
                percent_encode_into(&mut text, value);
                // A token is at most MAX_TOKEN_BYTES (16 KiB) long, so its values, even with
                // every byte percent-encoded, stay far below 4 GiB.
                u32::try_from(text.len()).unwrap_or(u32::MAX)
            })
        });
        StandardValues {
            text: Bytes::from(text),
            ends,
        }
    }

    /// Returns each standard header with its value, or `None` to remove it.
    fn headers(&self) -> impl Iterator<Item = (&HeaderName, Option<HeaderValue>)> + '_ {
        let mut start = 0;
        STANDARD_HEADERS
            .iter()
            .zip(self.ends)
            .map(move |(name, end)| {
                let value = end.map(|end| {
                    let end = usize::try_from(end)
                        .unwrap_or(usize::MAX)
                        .min(self.text.len());
                    let range = start..end;
                    start = range.end;
                    header_value(self.text.slice(range))
                });
                (name, value)
            })
    }
}

/// Removes every header whose name starts with IDENTITY_HEADER_PREFIX (all copies).
/// Header names are stored in lower case, so this covers every spelling a client sends.
pub fn strip_identity_headers(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(IDENTITY_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
}

/// Sets X-Portcullis-Subject, X-Portcullis-Scope (space-separated), X-Portcullis-Client-Id,
/// X-Portcullis-Issuer and the configured claim headers from a verified token.
///
/// A header whose claim the token lacks is omitted (and an earlier value removed); an empty
/// scope list is sent as an empty value. A configured claim header with the same name as a
/// standard one replaces it. Call [`strip_identity_headers`] first.
pub fn set_identity_headers(
    headers: &mut HeaderMap,
    token: &VerifiedToken,
    claim_headers: &[ClaimHeader],
) {
    let standard = token
        .identity_headers
        .get_or_init(|| StandardValues::render(token));
    for (name, value) in standard.headers() {
        match value {
            Some(value) => headers.insert(name.clone(), value),
            None => headers.remove(name),
        };
    }
    for claim_header in claim_headers {
        let text = token
            .claims()
            .and_then(|claims| claims.get(&claim_header.claim))
            .and_then(claim_text);
        set_or_remove(headers, claim_header.header.clone(), text.as_deref());
    }
}

fn set_or_remove(headers: &mut HeaderMap, name: HeaderName, text: Option<&str>) {
    match text {
        Some(text) => {
            headers.insert(name, encode_header_value(text));
        }
        None => {
            headers.remove(name);
        }
    }
}

/// Renders a claim as header text, before percent-encoding. Returns `None` for null.
fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => Some(value.to_string()),
        Value::Array(items) => {
            let strings: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            match strings {
                Some(strings) if !strings.iter().any(|s| s.contains(',')) => {
                    Some(strings.join(","))
                }
                _ => Some(value.to_string()),
            }
        }
    }
}

/// Percent-encodes `%`, control characters, DEL and non-ASCII bytes, leaving a valid value.
fn encode_header_value(text: &str) -> HeaderValue {
    let mut encoded = Vec::with_capacity(text.len());
    percent_encode_into(&mut encoded, text);
    header_value(Bytes::from(encoded))
}

/// Appends `text` to `out` with `%`, control characters, DEL and every non-ASCII byte written
/// as `%XX`, so only bytes 0x20 to 0x7E remain.
fn percent_encode_into(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if byte == b'%' || !(0x20..0x7f).contains(&byte) {
            out.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]);
        } else {
            out.push(byte);
        }
    }
}

/// Wraps bytes written by [`percent_encode_into`] as a header value without copying them.
fn header_value(encoded: Bytes) -> HeaderValue {
    // Only bytes 0x20..=0x7E remain after encoding, all valid in a header value, so the
    // fallback is never taken.
    HeaderValue::from_maybe_shared(encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests;
