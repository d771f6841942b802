//! Parsing a JWS in compact serialization (RFC 7515 section 7.1) without trusting it yet.

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
    pub kid: Option<String>,
    /// The header `typ`, as written.
    pub typ: Option<String>,
    /// The payload's JSON text, decoded from base64url; [`UnverifiedToken::claims`] reads it.
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

impl UnverifiedToken<'_> {
    /// Parses the payload as a JSON object, rejecting a repeated member at any depth, and
    /// returns the claims that verification checks. The other members are checked and
    /// dropped; [`crate::verify::VerifiedToken::claims`] parses them all when a route needs
    /// them.
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
    let mut segments = token.splitn(4, '.');
    let (Some(header_text), Some(payload_text), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(VerifyError::malformed(format!(
            "expected 3 dot-separated segments, found {}",
            token.split('.').count()
        )));
    };
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
        Some(Field::String(kid)) => Some(kid.into_owned()),
        Some(_) => return Err(VerifyError::malformed("the header kid is not a string")),
        None => None,
    };
    let typ = match typ {
        Some(Field::String(typ)) => Some(typ.into_owned()),
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
