//! Fuzzes the parsers of documents fetched from an issuer: the JWKS and the OpenID Connect
//! discovery document. Unusable keys must be skipped one by one, and no input may panic.
#![no_main]

use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;

use portcullis::keys::{parse_discovery, parse_jwks};

/// Every algorithm the sidecar supports, so every key type is parsed.
const ALL: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_jwks(data, &ALL) {
        let _ = portcullis::keys::KeySet::new(parsed.keys);
    }
    let _ = parse_discovery(data, "https://sts.test");
});
