//! Signing keys for benchmark tokens: generation, loading an existing PKCS#8 PEM key (such
//! as the demo STS's), and the public forms the contenders read: a JWK for Portcullis and
//! Envoy, and a PEM public key for HAProxy's `jwt_verify`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use rand::rngs::OsRng;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use serde_json::{json, Value};

/// RSA modulus size of generated keys: what the demo STS and most issuers use for RS256.
const RSA_KEY_BITS: usize = 2048;

/// The signature algorithms the benchmark can issue tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SigningAlgorithm {
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "ES256")]
    Es256,
    #[value(name = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    /// Returns the JOSE name, as in a token's `alg` header.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }

    fn jwt_algorithm(self) -> Algorithm {
        match self {
            SigningAlgorithm::Rs256 => Algorithm::RS256,
            SigningAlgorithm::Es256 => Algorithm::ES256,
            SigningAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// A failure to create, load or use a signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate a {algorithm} key: {detail}")]
    Generate {
        algorithm: &'static str,
        detail: String,
    },
    #[error("the PEM is not a PKCS#8 {algorithm} private key: {detail}; pass a key of the algorithm given with --alg")]
    Parse {
        algorithm: &'static str,
        detail: String,
    },
    #[error("cannot sign a {algorithm} token: {source}")]
    Sign {
        algorithm: &'static str,
        source: jsonwebtoken::errors::Error,
    },
}

/// A private signing key with its `kid` and public forms.
pub struct SigningKey {
    pub algorithm: SigningAlgorithm,
    pub kid: String,
    private_pem: String,
    public_pem: String,
    jwk: Value,
    encoding_key: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key: RSA 2048 for RS256, P-256 for ES256, Ed25519 for EdDSA.
    pub fn generate(algorithm: SigningAlgorithm, kid: &str) -> Result<SigningKey, KeyError> {
        let generate_error = |detail: String| KeyError::Generate {
            algorithm: algorithm.name(),
            detail,
        };
        let pem = match algorithm {
            SigningAlgorithm::Rs256 => rsa::RsaPrivateKey::new(&mut OsRng, RSA_KEY_BITS)
                .map_err(|err| generate_error(err.to_string()))?
                .to_pkcs8_pem(LineEnding::LF),
            SigningAlgorithm::Es256 => {
                p256::SecretKey::random(&mut OsRng).to_pkcs8_pem(LineEnding::LF)
            }
            SigningAlgorithm::EdDsa => {
                ed25519_dalek::SigningKey::generate(&mut OsRng).to_pkcs8_pem(LineEnding::LF)
            }
        }
        .map_err(|err| generate_error(err.to_string()))?;
        SigningKey::from_pem(algorithm, kid, &pem)
    }

    /// Loads a PKCS#8 PEM private key of `algorithm` and derives its public forms.
    pub fn from_pem(
        algorithm: SigningAlgorithm,
        kid: &str,
        pem: &str,
    ) -> Result<SigningKey, KeyError> {
        let parse_error = |detail: String| KeyError::Parse {
            algorithm: algorithm.name(),
            detail,
        };
        let (public_pem, mut jwk, encoding_key) = match algorithm {
            SigningAlgorithm::Rs256 => {
                let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
                    .map_err(|err| parse_error(err.to_string()))?;
                let public = key.to_public_key();
                let jwk = json!({
                    "kty": "RSA",
                    "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                    "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
                });
                let public_pem = public
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|err| parse_error(err.to_string()))?;
                let encoding_key = EncodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|err| parse_error(err.to_string()))?;
                (public_pem, jwk, encoding_key)
            }
            SigningAlgorithm::Es256 => {
                let key = p256::SecretKey::from_pkcs8_pem(pem)
                    .map_err(|err| parse_error(err.to_string()))?;
                let public = key.public_key();
                let point = public.to_encoded_point(false);
                let (Some(x), Some(y)) = (point.x(), point.y()) else {
                    return Err(parse_error("the public point is not uncompressed".into()));
                };
                let jwk = json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(x),
                    "y": URL_SAFE_NO_PAD.encode(y),
                });
                let public_pem = public
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|err| parse_error(err.to_string()))?;
                let encoding_key = EncodingKey::from_ec_pem(pem.as_bytes())
                    .map_err(|err| parse_error(err.to_string()))?;
                (public_pem, jwk, encoding_key)
            }
            SigningAlgorithm::EdDsa => {
                let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
                    .map_err(|err| parse_error(err.to_string()))?;
                let public = key.verifying_key();
                let jwk = json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(public.to_bytes()),
                });
                let public_pem = public
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(|err| parse_error(err.to_string()))?;
                let encoding_key = EncodingKey::from_ed_pem(pem.as_bytes())
                    .map_err(|err| parse_error(err.to_string()))?;
                (public_pem, jwk, encoding_key)
            }
        };
        if let Value::Object(members) = &mut jwk {
            members.insert("kid".into(), Value::from(kid));
            members.insert("use".into(), Value::from("sig"));
            members.insert("alg".into(), Value::from(algorithm.name()));
        }
        Ok(SigningKey {
            algorithm,
            kid: kid.to_owned(),
            private_pem: pem.to_string(),
            public_pem,
            jwk,
            encoding_key,
        })
    }

    /// Returns the private key as PKCS#8 PEM. Write it only to files with
    /// [`crate::files::PRIVATE_FILE_MODE`].
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    /// Returns the public key as SPKI PEM (`BEGIN PUBLIC KEY`).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    /// Returns the public key as a JWK with `kid`, `use` and `alg`.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `claims` as a compact JWS with this key's `alg` and `kid` and the header `typ`.
    pub fn sign(&self, claims: &impl Serialize, typ: &str) -> Result<String, KeyError> {
        let mut header = Header::new(self.algorithm.jwt_algorithm());
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding_key).map_err(|source| KeyError::Sign {
            algorithm: self.algorithm.name(),
            source,
        })
    }
}

/// Builds a JWKS document holding the public JWKs of `keys`.
pub fn jwks_document(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.jwk().clone()).collect::<Vec<_>>() })
}
