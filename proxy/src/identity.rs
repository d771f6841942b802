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
    let standard = token.identity_headers.get_or_init(|| {
        let render = |text: Option<&str>| text.map(encode_header_value);
        vec![
            (SUBJECT_HEADER, render(token.subject.as_deref())),
            (SCOPE_HEADER, render(Some(&token.scopes.join(" ")))),
            (CLIENT_ID_HEADER, render(token.client_id.as_deref())),
            (ISSUER_HEADER, render(Some(&token.issuer))),
        ]
    });
    for (name, value) in standard {
        match value {
            // A `HeaderValue` clone shares the bytes: no copy per request.
            Some(value) => headers.insert(name.clone(), value.clone()),
            None => headers.remove(name),
        };
    }
    for claim_header in claim_headers {
        let text = token.claims().get(&claim_header.claim).and_then(claim_text);
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
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte == b'%' || !(0x20..0x7f).contains(&byte) {
            encoded.push_str(&format!("%{byte:02X}"));
        } else {
            encoded.push(char::from(byte));
        }
    }
    // Only bytes 0x20..=0x7E remain, all valid in a header value.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests;
