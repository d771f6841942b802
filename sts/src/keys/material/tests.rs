use jsonwebtoken::{decode, decode_header, encode, DecodingKey, Header, Validation};
use serde_json::{json, Value};

use super::*;

/// The RSA example key of RFC 7638 section 3.1.
const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

#[test]
fn thumbprint_matches_rfc7638_example() {
    let parameters = AlgorithmParameters::RSA(RSAKeyParameters {
        key_type: RSAKeyType::RSA,
        n: RFC7638_N.to_owned(),
        e: "AQAB".to_owned(),
    });
    assert_eq!(
        thumbprint(&parameters),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn thumbprint_matches_rfc8037_example() {
    // RFC 8037 appendix A.3.
    let parameters = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
        key_type: OctetKeyPairType::OctetKeyPair,
        curve: EllipticCurve::Ed25519,
        x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".to_owned(),
    });
    assert_eq!(
        thumbprint(&parameters),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

fn sign_and_verify(algorithm: SigningAlgorithm) -> Value {
    let pem = generate_pem(algorithm).unwrap();
    let key = parse_pem(algorithm, &pem).unwrap();

    let mut header = Header::new(algorithm.jwt_algorithm());
    header.kid = Some(key.kid.clone());
    let token = encode(&header, &json!({"sub": "peter"}), &key.encoding_key).unwrap();

    assert_eq!(
        decode_header(&token).unwrap().kid.as_deref(),
        Some(key.kid.as_str())
    );
    let decoding_key = DecodingKey::from_jwk(&key.jwk).unwrap();
    let mut validation = Validation::new(algorithm.jwt_algorithm());
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = decode::<Value>(&token, &decoding_key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "peter");

    let jwk = serde_json::to_value(&key.jwk).unwrap();
    assert_eq!(jwk["kid"], key.kid.as_str());
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], algorithm.as_str());
    jwk
}

#[test]
fn rs256_key_signs_verifiably() {
    let jwk = sign_and_verify(SigningAlgorithm::RS256);
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["e"], "AQAB");
    // 2048 bits are 256 bytes, which base64url encodes in 342 characters.
    assert_eq!(jwk["n"].as_str().unwrap().len(), 342);
}

#[test]
fn es256_key_signs_verifiably() {
    let jwk = sign_and_verify(SigningAlgorithm::ES256);
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
    assert_eq!(jwk["y"].as_str().unwrap().len(), 43);
}

#[test]
fn eddsa_key_signs_verifiably() {
    let jwk = sign_and_verify(SigningAlgorithm::EdDSA);
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
}

#[test]
fn parse_rejects_key_of_other_algorithm() {
    let pem = generate_pem(SigningAlgorithm::ES256).unwrap();
    let error = parse_pem(SigningAlgorithm::EdDSA, &pem).unwrap_err();
    assert!(error.contains("Ed25519"), "{error}");
}

#[test]
fn parse_is_deterministic() {
    let pem = generate_pem(SigningAlgorithm::EdDSA).unwrap();
    let first = parse_pem(SigningAlgorithm::EdDSA, &pem).unwrap();
    let second = parse_pem(SigningAlgorithm::EdDSA, &pem).unwrap();
    assert_eq!(first.kid, second.kid);
}
