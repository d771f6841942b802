//! Test key material and signing: real keys of every family the verifier accepts, their
//! public JWKs and other public encodings, and signing of claims or of raw header and
//! payload text.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::EncodePublicKey;
use serde_json::{json, Value};

/// Encodes bytes as unpadded base64url, the encoding of every JWS segment.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A private signing key with the public JWK that matches it, and its public key in the
/// encodings an attacker could try as an HMAC secret.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
    /// The public JWK, with `kid`, `use` and `alg` set.
    pub jwk: Value,
    /// The public key as (name of the encoding, bytes).
    pub public_encodings: Vec<(&'static str, Vec<u8>)>,
}

/// RSA key generation takes a noticeable time, so each test binary generates at most three
/// keys and shares them.
fn rsa_private_key(slot: usize) -> &'static rsa::RsaPrivateKey {
    static KEYS: [OnceLock<rsa::RsaPrivateKey>; 3] =
        [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    KEYS[slot].get_or_init(|| {
        rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation")
    })
}

/// Returns the SPKI encodings of `public`, PEM and DER, which every key family has.
fn spki_encodings(public: &impl EncodePublicKey) -> Vec<(&'static str, Vec<u8>)> {
    let pem = public
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .expect("SPKI PEM");
    let der = public.to_public_key_der().expect("SPKI DER");
    vec![("SPKI PEM", pem.into_bytes()), ("SPKI DER", der.into_vec())]
}

impl TestKey {
    /// Creates an RS256 key from one of the shared RSA keys, chosen by `slot` (0 to 2).
    pub fn rsa(kid: &str, slot: usize) -> TestKey {
        use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
        use rsa::traits::PublicKeyParts;

        let private = rsa_private_key(slot);
        let public = private.to_public_key();
        let pem = private
            .to_pkcs1_pem(LineEnding::LF)
            .expect("PKCS#1 encoding");
        let jwk = json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(private.n().to_bytes_be()),
            "e": b64(private.e().to_bytes_be()),
        });
        let mut public_encodings = spki_encodings(&public);
        public_encodings.extend([
            (
                "PKCS#1 PEM",
                public
                    .to_pkcs1_pem(LineEnding::LF)
                    .expect("PKCS#1 PEM")
                    .into_bytes(),
            ),
            (
                "PKCS#1 DER",
                public.to_pkcs1_der().expect("PKCS#1 DER").into_vec(),
            ),
            ("JWK JSON", jwk.to_string().into_bytes()),
            ("modulus", private.n().to_bytes_be()),
        ]);
        TestKey {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM"),
            jwk,
            public_encodings,
        }
    }

    /// Generates an ES256 key.
    pub fn ec(kid: &str) -> TestKey {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        use p256::pkcs8::{EncodePrivateKey, LineEnding};

        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let public = secret.public_key();
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 encoding");
        let point = public.to_encoded_point(false);
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64(point.x().expect("uncompressed point")),
            "y": b64(point.y().expect("uncompressed point")),
        });
        let mut public_encodings = spki_encodings(&public);
        public_encodings.extend([
            ("SEC1 point", point.as_bytes().to_vec()),
            ("JWK JSON", jwk.to_string().into_bytes()),
        ]);
        TestKey {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(pem.as_bytes()).expect("EC PEM"),
            jwk,
            public_encodings,
        }
    }

    /// Generates an ES384 key. rcgen provides P-384, which the p256 crate does not.
    pub fn ec384(kid: &str) -> TestKey {
        let key_pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384 key");
        // The raw public key is the uncompressed point: 0x04, then x and y of 48 bytes each.
        let point = key_pair.public_key_raw();
        let jwk = json!({
            "kty": "EC", "crv": "P-384", "kid": kid, "use": "sig", "alg": "ES384",
            "x": b64(&point[1..49]),
            "y": b64(&point[49..97]),
        });
        let public_encodings = vec![
            ("SEC1 point", point.to_vec()),
            ("JWK JSON", jwk.to_string().into_bytes()),
        ];
        TestKey {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES384,
            encoding: EncodingKey::from_ec_pem(key_pair.serialize_pem().as_bytes())
                .expect("EC PEM"),
            jwk,
            public_encodings,
        }
    }

    /// Generates an Ed25519 key.
    pub fn ed25519(kid: &str) -> TestKey {
        use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
        use ed25519_dalek::pkcs8::EncodePrivateKey;

        let signing = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let verifying = signing.verifying_key();
        let pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .expect("PKCS#8 encoding");
        let jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "alg": "EdDSA",
            "x": b64(verifying.as_bytes()),
        });
        let mut public_encodings = spki_encodings(&verifying);
        public_encodings.extend([
            ("raw", verifying.as_bytes().to_vec()),
            ("JWK JSON", jwk.to_string().into_bytes()),
        ]);
        TestKey {
            kid: kid.to_owned(),
            algorithm: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(pem.as_bytes()).expect("Ed25519 PEM"),
            jwk,
            public_encodings,
        }
    }

    /// Returns this key's JWK without `alg`, so the provider's `algorithms` alone decide
    /// which algorithms it verifies.
    pub fn unpinned_jwk(&self) -> Value {
        let mut jwk = self.jwk.clone();
        jwk.as_object_mut().expect("JWK is an object").remove("alg");
        jwk
    }

    /// Returns the header [`TestKey::sign`] writes, as JSON: this key's algorithm,
    /// `typ: at+jwt` and its `kid`.
    pub fn header(&self) -> Value {
        json!({ "alg": algorithm_name(self.algorithm), "typ": "at+jwt", "kid": self.kid })
    }

    /// Signs `claims` with jsonwebtoken's encoder, with `typ: at+jwt` and this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing")
    }

    /// Signs raw header and payload JSON text as given, so tests can craft any header.
    pub fn sign_raw(&self, header_json: &str, payload_json: &str) -> String {
        self.sign_raw_with(self.algorithm, header_json, payload_json)
    }

    /// Signs raw header and payload text with `algorithm`, which must fit this key.
    pub fn sign_raw_with(
        &self,
        algorithm: Algorithm,
        header_json: &str,
        payload_json: &str,
    ) -> String {
        sign_input(algorithm, &self.encoding, header_json, payload_json)
    }
}

/// Signs raw header and payload text with an HMAC algorithm keyed by `secret`.
pub fn sign_hmac(
    algorithm: Algorithm,
    secret: &[u8],
    header_json: &str,
    payload_json: &str,
) -> String {
    let key = EncodingKey::from_secret(secret);
    sign_input(algorithm, &key, header_json, payload_json)
}

/// Encodes header and payload text and appends their signature as a compact JWS.
fn sign_input(
    algorithm: Algorithm,
    key: &EncodingKey,
    header_json: &str,
    payload_json: &str,
) -> String {
    let signing_input = format!("{}.{}", b64(header_json), b64(payload_json));
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, algorithm).expect("signing");
    format!("{signing_input}.{signature}")
}

/// Returns the JWS name of `algorithm`, such as `RS256`.
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
    }
}

/// Builds a JWKS document that contains the public JWKs of `keys`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| &key.jwk).collect::<Vec<_>>() })
}

/// Builds a JWKS document from JWKs as given, such as [`TestKey::unpinned_jwk`] output.
pub fn jwk_set(jwks: &[&Value]) -> Value {
    json!({ "keys": jwks })
}
