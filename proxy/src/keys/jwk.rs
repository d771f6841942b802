//! Parsing a JWKS document (RFC 7517) into the keys the sidecar can verify with. Each JWK is
//! checked on its own: an unusable key is skipped with a reason and never fails the set.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::public_key::{encode_rsa_public_key, ParsedKeys};
use super::set::{KeyFamily, VerificationKey};
use crate::config::parse_algorithm;

/// The aws-lc-rs `RSA_*_2048_8192_*` parameters verify RSA signatures only with moduli of 2048
/// to 8192 bits; shorter keys are also too weak to trust.
const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

/// The reason one JWK of a set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    NotAnObject,
    FieldNotString(&'static str),
    MissingField(&'static str),
    UnsupportedKeyType(String),
    NotForSignatures(String),
    NoVerifyOperation,
    UnknownAlgorithm(String),
    AlgorithmNotAllowed(String),
    AlgorithmDoesNotFit {
        algorithm: String,
        family: KeyFamily,
    },
    NoAllowedAlgorithm(KeyFamily),
    InvalidBase64(&'static str),
    UnsupportedCurve(String),
    WrongLength {
        field: &'static str,
        expected: usize,
        found: usize,
    },
    RsaModulusSize(usize),
    /// The crypto library rejected the decoded key, for example an EC point off its curve.
    InvalidKey(KeyFamily),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NotAnObject => write!(f, "the entry is not a JSON object"),
            SkipReason::FieldNotString(field) => write!(f, "`{field}` is not a string"),
            SkipReason::MissingField(field) => write!(f, "`{field}` is missing"),
            SkipReason::UnsupportedKeyType(kty) => {
                write!(f, "key type `{kty}` is not supported (use RSA, EC or OKP)")
            }
            SkipReason::NotForSignatures(usage) => {
                write!(f, "`use` is `{usage}`, not `sig`")
            }
            SkipReason::NoVerifyOperation => write!(f, "`key_ops` does not include `verify`"),
            SkipReason::UnknownAlgorithm(alg) => write!(f, "algorithm `{alg}` is not supported"),
            SkipReason::AlgorithmNotAllowed(alg) => {
                write!(f, "algorithm `{alg}` is not in the provider's `algorithms`")
            }
            SkipReason::AlgorithmDoesNotFit { algorithm, family } => {
                write!(f, "algorithm `{algorithm}` does not fit a {family} key")
            }
            SkipReason::NoAllowedAlgorithm(family) => {
                write!(f, "none of the provider's `algorithms` uses a {family} key")
            }
            SkipReason::InvalidBase64(field) => {
                write!(f, "`{field}` is not canonical unpadded base64url")
            }
            SkipReason::UnsupportedCurve(crv) => write!(f, "curve `{crv}` is not supported"),
            SkipReason::WrongLength {
                field,
                expected,
                found,
            } => write!(f, "`{field}` has {found} bytes instead of {expected}"),
            SkipReason::RsaModulusSize(bits) => write!(
                f,
                "the RSA modulus has {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are supported"
            ),
            SkipReason::InvalidKey(KeyFamily::Rsa) => write!(
                f,
                "`n` and `e` are not a valid RSA public key: the modulus must be odd, and the \
                 exponent odd and from 3 to 2^33 - 1"
            ),
            SkipReason::InvalidKey(family @ (KeyFamily::EcP256 | KeyFamily::EcP384)) => {
                write!(f, "(`x`, `y`) is not a point on the {family} curve")
            }
            SkipReason::InvalidKey(KeyFamily::Ed25519) => {
                write!(f, "`x` is not a valid Ed25519 public key")
            }
        }
    }
}

/// A JWK that was left out of the set, with its `kid` when it has a string one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    pub kid: Option<String>,
    pub reason: SkipReason,
}

/// The result of parsing a JWKS document: the usable keys and the skipped ones.
#[derive(Debug, Default)]
pub struct ParsedJwks {
    pub keys: Vec<VerificationKey>,
    pub skipped: Vec<SkippedKey>,
}

/// Parses a JWKS document. Fails only when the document itself is not a JSON object with a
/// `keys` array; problems with single keys end up in [`ParsedJwks::skipped`].
pub fn parse_jwks(document: &[u8], allowed: &[Algorithm]) -> Result<ParsedJwks, String> {
    let value: Value = serde_json::from_slice(document)
        .map_err(|err| format!("the document is not valid JSON: {err}"))?;
    let entries = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the document has no `keys` array")?;

    let mut parsed = ParsedJwks::default();
    for entry in entries {
        match parse_jwk(entry, allowed) {
            Ok(key) => parsed.keys.push(key),
            Err(reason) => parsed.skipped.push(SkippedKey {
                kid: entry.get("kid").and_then(Value::as_str).map(str::to_owned),
                reason,
            }),
        }
    }
    Ok(parsed)
}

fn parse_jwk(entry: &Value, allowed: &[Algorithm]) -> Result<VerificationKey, SkipReason> {
    let jwk = entry.as_object().ok_or(SkipReason::NotAnObject)?;
    let kid = optional_string(jwk, "kid")?.map(str::to_owned);

    if let Some(usage) = optional_string(jwk, "use")? {
        if usage != "sig" {
            return Err(SkipReason::NotForSignatures(usage.to_owned()));
        }
    }
    if let Some(operations) = jwk.get("key_ops") {
        let verifies = operations
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err(SkipReason::NoVerifyOperation);
        }
    }

    let kty = required_string(jwk, "kty")?;
    let (family, encoded) = match kty {
        "RSA" => rsa_key(jwk)?,
        "EC" => ec_key(jwk)?,
        "OKP" => okp_key(jwk)?,
        other => return Err(SkipReason::UnsupportedKeyType(other.to_owned())),
    };

    let algorithm = match optional_string(jwk, "alg")? {
        Some(name) => {
            let algorithm =
                parse_algorithm(name).ok_or_else(|| SkipReason::UnknownAlgorithm(name.into()))?;
            if !allowed.contains(&algorithm) {
                return Err(SkipReason::AlgorithmNotAllowed(name.into()));
            }
            if KeyFamily::of(algorithm) != Some(family) {
                return Err(SkipReason::AlgorithmDoesNotFit {
                    algorithm: name.into(),
                    family,
                });
            }
            Some(algorithm)
        }
        None => {
            if !allowed.iter().any(|a| KeyFamily::of(*a) == Some(family)) {
                return Err(SkipReason::NoAllowedAlgorithm(family));
            }
            None
        }
    };

    // A pinned key verifies only its own algorithm, and an unpinned one every allowed
    // algorithm of its family.
    let algorithms: Vec<Algorithm> = match algorithm {
        Some(pinned) => vec![pinned],
        None => allowed
            .iter()
            .copied()
            .filter(|candidate| KeyFamily::of(*candidate) == Some(family))
            .collect(),
    };
    let parsed = ParsedKeys::parse(family, &encoded, algorithms)?;

    Ok(VerificationKey {
        kid,
        family,
        algorithm,
        parsed,
        material: encoded,
    })
}

/// A key's family and its public key in the form aws-lc-rs parses for that family.
type EncodedKey = (KeyFamily, Vec<u8>);

fn rsa_key(jwk: &Map<String, Value>) -> Result<EncodedKey, SkipReason> {
    let modulus = decode_field(jwk, "n")?;
    let exponent = decode_field(jwk, "e")?;
    // RFC 7518 forbids leading zero bytes, but some issuers add one. DER integers must not
    // have them, so strip them before counting bits and encoding.
    let modulus = strip_leading_zeros(&modulus);
    let exponent = strip_leading_zeros(&exponent);
    if exponent.is_empty() {
        return Err(SkipReason::MissingField("e"));
    }
    let bits = bit_length(modulus);
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(SkipReason::RsaModulusSize(bits));
    }

    Ok((KeyFamily::Rsa, encode_rsa_public_key(modulus, exponent)))
}

fn ec_key(jwk: &Map<String, Value>) -> Result<EncodedKey, SkipReason> {
    let (family, coordinate_len) = match required_string(jwk, "crv")? {
        "P-256" => (KeyFamily::EcP256, 32),
        "P-384" => (KeyFamily::EcP384, 48),
        other => return Err(SkipReason::UnsupportedCurve(other.to_owned())),
    };
    let x = decode_field(jwk, "x")?;
    let y = decode_field(jwk, "y")?;
    check_length("x", &x, coordinate_len)?;
    check_length("y", &y, coordinate_len)?;

    // The uncompressed SEC 1 point: 0x04, then x and y. Whether it lies on the curve is
    // checked when aws-lc-rs parses it.
    let point = [&[0x04][..], &x, &y].concat();
    Ok((family, point))
}

fn okp_key(jwk: &Map<String, Value>) -> Result<EncodedKey, SkipReason> {
    match required_string(jwk, "crv")? {
        "Ed25519" => {}
        other => return Err(SkipReason::UnsupportedCurve(other.to_owned())),
    }
    let x = decode_field(jwk, "x")?;
    check_length("x", &x, 32)?;
    Ok((KeyFamily::Ed25519, x))
}

fn optional_string<'a>(
    jwk: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, SkipReason> {
    match jwk.get(field) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(SkipReason::FieldNotString(field)),
    }
}

fn required_string<'a>(
    jwk: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, SkipReason> {
    optional_string(jwk, field)?.ok_or(SkipReason::MissingField(field))
}

/// Decodes a base64url field. The engine rejects padding, characters outside the URL-safe
/// alphabet and non-zero trailing bits, so each value has exactly one accepted spelling.
fn decode_field(jwk: &Map<String, Value>, field: &'static str) -> Result<Vec<u8>, SkipReason> {
    let text = required_string(jwk, field)?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| SkipReason::InvalidBase64(field))
}

fn check_length(field: &'static str, bytes: &[u8], expected: usize) -> Result<(), SkipReason> {
    if bytes.len() != expected {
        return Err(SkipReason::WrongLength {
            field,
            expected,
            found: bytes.len(),
        });
    }
    Ok(())
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn bit_length(big_endian: &[u8]) -> usize {
    match big_endian.first() {
        Some(first) => big_endian.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}
