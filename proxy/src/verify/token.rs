//! Parsing a JWS in compact serialization (RFC 7515 section 7.1) without trusting it yet.

use std::borrow::Cow;
use std::ops::Range;

use jsonwebtoken::Algorithm;

use super::base64url;
use super::error::VerifyError;
use super::json::{object_members, Field};
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
    /// The header's JSON text, which `kid` and `typ` usually point into.
    header_json: Vec<u8>,
    kid: Option<HeaderText>,
    typ: Option<HeaderText>,
    /// The payload's JSON text, decoded from base64url and read by [`UnverifiedToken::claims`].
    pub payload_json: Vec<u8>,
}

/// The payload members that verification reads, borrowed from the payload text.
#[derive(Debug)]
pub struct Claims<'a> {
    pub iss: Option<Field<'a>>,
    pub exp: Option<Field<'a>>,
    pub nbf: Option<Field<'a>>,
    pub iat: Option<Field<'a>>,
    pub aud: Option<Field<'a>>,
    pub sub: Option<Field<'a>>,
    pub client_id: Option<Field<'a>>,
    pub scope: Option<Field<'a>>,
    pub scp: Option<Field<'a>>,
}

/// A string from the header: where it lies in the header text, or a copy when it was
/// written with escapes.
#[derive(Debug)]
enum HeaderText {
    At(Range<usize>),
    Copied(String),
}

impl HeaderText {
    /// Locates `text`, read from `header_json`, without copying it when it is borrowed.
    fn new(text: Cow<'_, str>, header_json: &[u8]) -> HeaderText {
        let start = (text.as_ptr() as usize).checked_sub(header_json.as_ptr() as usize);
        match (&text, start) {
            (Cow::Borrowed(_), Some(start)) if start + text.len() <= header_json.len() => {
                HeaderText::At(start..start + text.len())
            }
            _ => HeaderText::Copied(text.into_owned()),
        }
    }
}

impl UnverifiedToken<'_> {
    /// Returns the header `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.header_text(self.kid.as_ref())
    }

    /// Returns the header `typ`, as written.
    pub fn typ(&self) -> Option<&str> {
        self.header_text(self.typ.as_ref())
    }

    fn header_text<'s>(&'s self, text: Option<&'s HeaderText>) -> Option<&'s str> {
        match text? {
            // The range came from a string borrowed from this text, so it spans whole UTF-8
            // characters and the check passes.
            HeaderText::At(range) => std::str::from_utf8(self.header_json.get(range.clone())?).ok(),
            HeaderText::Copied(text) => Some(text),
        }
    }

    /// Parses the payload strictly (no repeated member at any depth) and returns the claims
    /// that verification checks. [`crate::verify::VerifiedToken::claims`] parses the rest.
    pub fn claims(&self) -> Result<Claims<'_>, VerifyError> {
        let [iss, exp, nbf, iat, aud, sub, client_id, scope, scp] = object_members(
            &self.payload_json,
            [
                "iss",
                "exp",
                "nbf",
                "iat",
                "aud",
                "sub",
                "client_id",
                "scope",
                "scp",
            ],
        )
        .map_err(|problem| VerifyError::malformed(format!("the payload is {problem}")))?;
        Ok(Claims {
            iss,
            exp,
            nbf,
            iat,
            aud,
            sub,
            client_id,
            scope,
            scp,
        })
    }
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
    // Byte offsets of the dots. Slicing there is safe because `.` is ASCII.
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    let (Some(first), Some(second), None) = (dots.next(), dots.next(), dots.next()) else {
        return Err(VerifyError::malformed(format!(
            "expected 3 dot-separated segments, found {}",
            memchr::memchr_iter(b'.', token.as_bytes()).count() + 1
        )));
    };
    let (header_text, payload_text, signature) = (
        &token[..first],
        &token[first + 1..second],
        &token[second + 1..],
    );
    let signing_input = &token[..header_text.len() + 1 + payload_text.len()];

    let header_json = decode_segment("header", header_text)?;
    let [alg, kid, typ, crit] = object_members(&header_json, ["alg", "kid", "typ", "crit"])
        .map_err(|problem| VerifyError::malformed(format!("the header is {problem}")))?;
    let payload_json = decode_segment("payload", payload_text)?;
    let signature = decode_segment("signature", signature)?;

    let algorithm = match alg {
        Some(Field::String(name)) => {
            parse_algorithm(&name).ok_or_else(|| VerifyError::AlgorithmNotAllowed {
                algorithm: name.into_owned(),
            })?
        }
        Some(_) => return Err(VerifyError::malformed("the header alg is not a string")),
        None => return Err(VerifyError::malformed("the header has no alg")),
    };
    let kid = match kid {
        Some(Field::String(kid)) => Some(HeaderText::new(kid, &header_json)),
        Some(_) => return Err(VerifyError::malformed("the header kid is not a string")),
        None => None,
    };
    let typ = match typ {
        Some(Field::String(typ)) => Some(HeaderText::new(typ, &header_json)),
        Some(_) => return Err(VerifyError::malformed("the header typ is not a string")),
        None => None,
    };
    if crit.is_some() {
        return Err(VerifyError::malformed(
            "the header marks extensions as critical (crit), which are not supported",
        ));
    }

    Ok(UnverifiedToken {
        signing_input,
        signature,
        algorithm,
        header_json,
        kid,
        typ,
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
    base64url::decode(text.as_bytes()).map_err(|_| {
        VerifyError::malformed(format!(
            "the {name} segment is not canonical unpadded base64url"
        ))
    })
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;

    fn token_with_header(header: &str) -> String {
        format!("{}.e30.AA", URL_SAFE_NO_PAD.encode(header))
    }

    #[test]
    fn header_strings_read_in_place() {
        let token = token_with_header(r#"{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}"#);
        let parsed = parse(&token).expect("valid token");
        assert!(matches!(parsed.kid, Some(HeaderText::At(_))));
        assert_eq!(parsed.kid(), Some("rsa-1"));
        assert_eq!(parsed.typ(), Some("at+jwt"));
    }

    #[test]
    fn escaped_header_strings_copied() {
        let token = token_with_header(r#"{"alg":"RS256","kid":"rsa\u002d1","typ":"a\u0074+jwt"}"#);
        let parsed = parse(&token).expect("valid token");
        assert!(matches!(parsed.kid, Some(HeaderText::Copied(_))));
        assert_eq!(parsed.kid(), Some("rsa-1"));
        assert_eq!(parsed.typ(), Some("at+jwt"));
    }

    #[test]
    fn absent_header_strings() {
        let token = token_with_header(r#"{"alg":"ES256"}"#);
        let parsed = parse(&token).expect("valid token");
        assert_eq!(parsed.kid(), None);
        assert_eq!(parsed.typ(), None);
    }
}
