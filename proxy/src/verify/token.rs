//! Parsing a JWS in compact serialization (RFC 7515 section 7.1) without trusting it yet.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::error::VerifyError;
use super::json::parse_object;
use crate::config::parse_algorithm;

/// Maximum token length in bytes. Access tokens are a few hundred bytes to a few KiB, and the
/// bound keeps decoding and hashing cheap for hostile input.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// A token split and decoded, with nothing verified yet.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    /// The exact received `header.payload` text: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The third segment, decoded.
    pub signature: Vec<u8>,
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    /// The header `typ`, as written.
    pub typ: Option<String>,
    pub payload: Map<String, Value>,
    /// The payload's JSON text, decoded from base64url; `payload` is its parse.
    pub payload_json: Vec<u8>,
}

/// Splits `token` into its three segments, decodes them strictly and reads the header.
///
/// Rejects:
/// - anything but three non-empty segments;
/// - base64url with padding, `+`, `/`, whitespace or non-zero trailing bits;
/// - a header or payload that is not a JSON object or repeats a member;
/// - an `alg` other than the asymmetric ones the sidecar supports, so `none` and
///   HS256/384/512 always fail;
/// - a `kid` or `typ` that is not a string;
/// - any `crit` header, because the sidecar implements no extension that could be critical.
///
/// The `jwk`, `jku`, `x5u` and `x5c` headers are ignored, because keys come only from the
/// issuer's JWKS.
pub fn parse(token: &str) -> Result<UnverifiedToken<'_>, VerifyError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(VerifyError::malformed(format!(
            "the token is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    let segments: Vec<&str> = token.split('.').collect();
    let [header_text, payload_text, signature] = segments.as_slice() else {
        return Err(VerifyError::malformed(format!(
            "expected 3 dot-separated segments, found {}",
            segments.len()
        )));
    };
    let signing_input = &token[..header_text.len() + 1 + payload_text.len()];

    let header = parse_object(&decode_segment("header", header_text)?)
        .map_err(|problem| VerifyError::malformed(format!("the header is {problem}")))?;
    let payload_json = decode_segment("payload", payload_text)?;
    let payload = parse_object(&payload_json)
        .map_err(|problem| VerifyError::malformed(format!("the payload is {problem}")))?;
    let signature = decode_segment("signature", signature)?;

    let algorithm = match header.get("alg") {
        Some(Value::String(name)) => {
            parse_algorithm(name).ok_or_else(|| VerifyError::AlgorithmNotAllowed {
                algorithm: name.clone(),
            })?
        }
        Some(_) => return Err(VerifyError::malformed("the header alg is not a string")),
        None => return Err(VerifyError::malformed("the header has no alg")),
    };
    let kid = match header.get("kid") {
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(VerifyError::malformed("the header kid is not a string")),
        None => None,
    };
    let typ = match header.get("typ") {
        Some(Value::String(typ)) => Some(typ.clone()),
        Some(_) => return Err(VerifyError::malformed("the header typ is not a string")),
        None => None,
    };
    if header.contains_key("crit") {
        return Err(VerifyError::malformed(
            "the header marks extensions as critical (crit), which are not supported",
        ));
    }

    Ok(UnverifiedToken {
        signing_input,
        signature,
        algorithm,
        kid,
        typ,
        payload,
        payload_json,
    })
}

/// Decodes one segment. The engine rejects padding, characters outside the URL-safe alphabet
/// and non-zero trailing bits, so each byte string has exactly one accepted spelling.
fn decode_segment(name: &str, text: &str) -> Result<Vec<u8>, VerifyError> {
    if text.is_empty() {
        return Err(VerifyError::malformed(format!(
            "the {name} segment is empty"
        )));
    }
    URL_SAFE_NO_PAD.decode(text).map_err(|_| {
        VerifyError::malformed(format!(
            "the {name} segment is not canonical unpadded base64url"
        ))
    })
}
