//! Public keys parsed once, when a key set is loaded, into aws-lc-rs `ParsedPublicKey`s.
//!
//! Verifying with an unparsed key makes the crypto library rebuild it on every call, which
//! for RSA includes the modulus's Montgomery constants. A parsed key is built once, and AWS-LC
//! caches the Montgomery constants in it at the first verification. The library's key checks
//! (an odd RSA modulus and exponent, an EC point on its curve) also run once, so a malformed
//! key is rejected with the set instead of failing every token.

use aws_lc_rs::signature::{self, ParsedPublicKey, VerificationAlgorithm};
use jsonwebtoken::Algorithm;

use super::jwk::SkipReason;
use super::set::KeyFamily;

/// DER tags of the two types in an `RSAPublicKey` (RFC 8017 appendix A.1.1).
const DER_INTEGER: u8 = 0x02;
const DER_SEQUENCE: u8 = 0x30;

/// Returns the aws-lc-rs verification parameters for a JWS `alg` (RFC 7518 section 3.1), or
/// `None` for the HMAC algorithms, which the sidecar never accepts.
///
/// ECDSA uses the `*_FIXED` variants because a JWS signature is `r || s` of fixed width, not
/// an ASN.1 structure. The RSA parameters accept moduli of 2048 to 8192 bits.
fn verification_algorithm(algorithm: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    let parameters: &'static dyn VerificationAlgorithm = match algorithm {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &signature::ED25519,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => return None,
    };
    Some(parameters)
}

/// A public key parsed once for each algorithm it may verify. aws-lc-rs binds a parsed key to
/// one algorithm, so an RSA key allowed for RS256 and PS256 is parsed twice.
#[derive(Clone, Default)]
pub(super) struct ParsedKeys {
    by_algorithm: Vec<(Algorithm, ParsedPublicKey)>,
}

impl ParsedKeys {
    /// Parses `encoded`, a key of `family`, once for each of `algorithms`, skipping repeats.
    /// `encoded` is what [`ParsedPublicKey::new`] takes for the family: a DER `RSAPublicKey`,
    /// an uncompressed EC point, or the 32 raw bytes of an Ed25519 key.
    pub(super) fn parse(
        family: KeyFamily,
        encoded: &[u8],
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<ParsedKeys, SkipReason> {
        let mut by_algorithm: Vec<(Algorithm, ParsedPublicKey)> = Vec::new();
        for algorithm in algorithms {
            if by_algorithm.iter().any(|(known, _)| *known == algorithm) {
                continue;
            }
            let parameters = match verification_algorithm(algorithm) {
                Some(parameters) if KeyFamily::of(algorithm) == Some(family) => parameters,
                _ => {
                    return Err(SkipReason::AlgorithmDoesNotFit {
                        algorithm: format!("{algorithm:?}"),
                        family,
                    })
                }
            };
            let parsed = ParsedPublicKey::new(parameters, encoded)
                .map_err(|_| SkipReason::InvalidKey(family))?;
            by_algorithm.push((algorithm, parsed));
        }
        Ok(ParsedKeys { by_algorithm })
    }

    /// Returns the key parsed for `algorithm`, if the key may verify it.
    pub(super) fn get(&self, algorithm: Algorithm) -> Option<&ParsedPublicKey> {
        self.by_algorithm
            .iter()
            .find(|(known, _)| *known == algorithm)
            .map(|(_, parsed)| parsed)
    }
}

/// Encodes an RSA public key as the DER `RSAPublicKey` SEQUENCE { modulus, publicExponent }.
/// `modulus` and `exponent` are unsigned big-endian magnitudes without leading zero bytes, as
/// the DER rule of minimal INTEGER encoding requires.
pub(super) fn encode_rsa_public_key(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(modulus.len() + exponent.len() + 16);
    push_unsigned_integer(&mut body, modulus);
    push_unsigned_integer(&mut body, exponent);

    let mut der = Vec::with_capacity(body.len() + 4);
    der.push(DER_SEQUENCE);
    push_length(&mut der, body.len());
    der.extend_from_slice(&body);
    der
}

/// Appends a DER INTEGER for a non-negative magnitude. A zero byte goes first when the top
/// bit is set, because DER integers are two's complement.
fn push_unsigned_integer(out: &mut Vec<u8>, magnitude: &[u8]) {
    let needs_sign_byte = magnitude.first().is_none_or(|first| first & 0x80 != 0);
    out.push(DER_INTEGER);
    push_length(out, magnitude.len() + usize::from(needs_sign_byte));
    if needs_sign_byte {
        out.push(0);
    }
    out.extend_from_slice(magnitude);
}

/// Appends a DER length: one byte below 128, otherwise `0x80 | n` and `n` big-endian bytes.
fn push_length(out: &mut Vec<u8>, length: usize) {
    if let Ok(short @ 0..0x80) = u8::try_from(length) {
        out.push(short);
        return;
    }
    let bytes = length.to_be_bytes();
    let leading_zeros = bytes.iter().take_while(|byte| **byte == 0).count();
    let significant = &bytes[leading_zeros..];
    // A usize has at most 16 bytes, so the count fits the low seven bits.
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_length_forms() {
        let cases: [(usize, &[u8]); 5] = [
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0x81, 0x80]),
            (255, &[0x81, 0xff]),
            (1029, &[0x82, 0x04, 0x05]),
        ];
        for (length, expected) in cases {
            let mut out = Vec::new();
            push_length(&mut out, length);
            assert_eq!(out, expected, "length {length}");
        }
    }

    #[test]
    fn der_integer_sign_byte() {
        let mut high = Vec::new();
        push_unsigned_integer(&mut high, &[0x80, 0x01]);
        assert_eq!(high, [DER_INTEGER, 3, 0x00, 0x80, 0x01]);

        let mut low = Vec::new();
        push_unsigned_integer(&mut low, &[0x01, 0x00, 0x01]);
        assert_eq!(low, [DER_INTEGER, 3, 0x01, 0x00, 0x01]);
    }

    #[test]
    fn algorithm_outside_family_is_rejected() {
        let point = [4u8; 65];
        for algorithm in [Algorithm::HS256, Algorithm::RS256] {
            let parsed = ParsedKeys::parse(KeyFamily::EcP256, &point, [algorithm]);
            assert_eq!(
                parsed.err(),
                Some(SkipReason::AlgorithmDoesNotFit {
                    algorithm: format!("{algorithm:?}"),
                    family: KeyFamily::EcP256,
                }),
            );
        }
    }
}
