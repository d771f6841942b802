//! Signing key material: generation as PKCS#8 PEM, parsing, the public JWK and its RFC 7638
//! thumbprint, which serves as the `kid`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::EncodingKey;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand::rngs::OsRng;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::config::SigningAlgorithm;

/// RSA modulus size in bits: 2048 is the minimum RFC 7518 section 3.3 allows for RS256 and
/// what the book's STS uses.
pub(crate) const RSA_KEY_BITS: usize = 2048;

/// A private signing key with its public JWK.
pub(crate) struct KeyMaterial {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub encoding_key: EncodingKey,
    pub jwk: Jwk,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Generates a new private key for `algorithm`, encoded as PKCS#8 PEM.
///
/// # Errors
///
/// A description of the failure, which happens only when the OS random number generator or
/// the encoder fails.
pub(crate) fn generate_pem(algorithm: SigningAlgorithm) -> Result<Zeroizing<String>, String> {
    match algorithm {
        SigningAlgorithm::RS256 => rsa::RsaPrivateKey::new(&mut OsRng, RSA_KEY_BITS)
            .map_err(|error| format!("RSA key generation failed: {error}"))?
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|error| format!("RSA key encoding failed: {error}")),
        SigningAlgorithm::ES256 => p256::SecretKey::random(&mut OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|error| format!("P-256 key encoding failed: {error}")),
        SigningAlgorithm::EdDSA => ed25519_dalek::SigningKey::generate(&mut OsRng)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|error| format!("Ed25519 key encoding failed: {error}")),
    }
}

/// Parses a PKCS#8 PEM private key of `algorithm` and derives its JWK and `kid`.
///
/// # Errors
///
/// A description of the problem when the PEM is not a key of that algorithm, or an RSA key
/// is shorter than [`RSA_KEY_BITS`].
pub(crate) fn parse_pem(algorithm: SigningAlgorithm, pem: &str) -> Result<KeyMaterial, String> {
    let (parameters, encoding_key) = match algorithm {
        SigningAlgorithm::RS256 => {
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                .map_err(|error| format!("not a PKCS#8 RSA private key: {error}"))?;
            let bits = key.size() * 8;
            if bits < RSA_KEY_BITS {
                return Err(format!(
                    "the RSA key has {bits} bits, fewer than the {RSA_KEY_BITS} RS256 requires"
                ));
            }
            let parameters = AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
                e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
            });
            (parameters, EncodingKey::from_rsa_pem(pem.as_bytes()))
        }
        SigningAlgorithm::ES256 => {
            let key = p256::SecretKey::from_pkcs8_pem(pem)
                .map_err(|error| format!("not a PKCS#8 P-256 private key: {error}"))?;
            let point = key.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err("the P-256 public key is the identity point".to_owned());
            };
            let parameters = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: URL_SAFE_NO_PAD.encode(x),
                y: URL_SAFE_NO_PAD.encode(y),
            });
            (parameters, EncodingKey::from_ec_pem(pem.as_bytes()))
        }
        SigningAlgorithm::EdDSA => {
            let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                .map_err(|error| format!("not a PKCS#8 Ed25519 private key: {error}"))?;
            let parameters = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
            });
            (parameters, EncodingKey::from_ed_pem(pem.as_bytes()))
        }
    };
    let encoding_key = encoding_key.map_err(|error| {
        format!(
            "the JWT library rejected the {} key: {error}",
            algorithm.as_str()
        )
    })?;

    let kid = thumbprint(&parameters);
    let jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(key_algorithm(algorithm)),
            key_id: Some(kid.clone()),
            ..CommonParameters::default()
        },
        algorithm: parameters,
    };
    Ok(KeyMaterial {
        kid,
        algorithm,
        encoding_key,
        jwk,
    })
}

/// Computes the RFC 7638 JWK thumbprint: base64url SHA-256 of the JSON object that holds
/// only the key type's required members, in lexicographic order and without whitespace.
/// Base64url values need no JSON escaping, so plain formatting produces that object.
pub(crate) fn thumbprint(parameters: &AlgorithmParameters) -> String {
    let canonical = match parameters {
        AlgorithmParameters::RSA(rsa) => {
            format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, rsa.e, rsa.n)
        }
        AlgorithmParameters::EllipticCurve(ec) => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            curve_name(&ec.curve),
            ec.x,
            ec.y
        ),
        AlgorithmParameters::OctetKeyPair(okp) => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            curve_name(&okp.curve),
            okp.x
        ),
        AlgorithmParameters::OctetKey(oct) => format!(r#"{{"k":"{}","kty":"oct"}}"#, oct.value),
    };
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn curve_name(curve: &EllipticCurve) -> &'static str {
    match curve {
        EllipticCurve::P256 => "P-256",
        EllipticCurve::P384 => "P-384",
        EllipticCurve::P521 => "P-521",
        EllipticCurve::Ed25519 => "Ed25519",
    }
}

fn key_algorithm(algorithm: SigningAlgorithm) -> KeyAlgorithm {
    match algorithm {
        SigningAlgorithm::RS256 => KeyAlgorithm::RS256,
        SigningAlgorithm::ES256 => KeyAlgorithm::ES256,
        SigningAlgorithm::EdDSA => KeyAlgorithm::EdDSA,
    }
}

#[cfg(test)]
mod tests;
