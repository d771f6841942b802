//! Token verification cost: a cache miss (every check) per algorithm next to the bare
//! signature check it contains, and a cache hit.
//!
//! `signature_only` calls `jsonwebtoken::crypto::verify`, the primitive the sidecar uses, on
//! the same token and key, so `verify_miss` minus `signature_only` is the sidecar's own cost:
//! parsing, key lookup, claim checks and the cache bookkeeping.

mod support;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use portcullis::keys::KeyStore;
use portcullis::metrics::Metrics;
use portcullis::verify::Verifier;
use portcullis_loadtest::keys::SigningAlgorithm;

const ALGORITHMS: [(SigningAlgorithm, Algorithm); 3] = [
    (SigningAlgorithm::Rs256, Algorithm::RS256),
    (SigningAlgorithm::Es256, Algorithm::ES256),
    (SigningAlgorithm::EdDsa, Algorithm::EdDSA),
];

/// Tokens cycled through per algorithm; with the cache off, repeats still miss.
const TOKENS: usize = 64;

fn verifier(config: &portcullis::config::Config) -> Verifier {
    let metrics = Metrics::new();
    let keys = KeyStore::new(&config.providers, metrics.clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(keys.refresh_all()).unwrap();
    Verifier::new(Arc::clone(&keys), &config.providers, &config.cache, metrics)
}

fn verification(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    for (algorithm, jwt_algorithm) in ALGORITHMS {
        let name = algorithm.name();
        let folder = tempfile::tempdir().unwrap();
        let keys = support::keys(algorithm, 1);
        let tokens = support::tokens(&keys[0], TOKENS);

        let no_cache = verifier(&support::config(folder.path(), &keys, &[name], 0, ""));
        let mut next = 0;
        group.bench_function(BenchmarkId::new("miss", name), |b| {
            b.iter(|| {
                next = (next + 1) % TOKENS;
                support::complete(no_cache.verify(&tokens[next])).unwrap()
            })
        });

        let jwk: Jwk = serde_json::from_value(keys[0].jwk().clone()).unwrap();
        let decoding_key = DecodingKey::from_jwk(&jwk).unwrap();
        let parts: Vec<(&str, &str)> = tokens
            .iter()
            .map(|token| token.rsplit_once('.').unwrap())
            .collect();
        let mut next = 0;
        group.bench_function(BenchmarkId::new("signature_only", name), |b| {
            b.iter(|| {
                next = (next + 1) % TOKENS;
                let (signing_input, signature) = parts[next];
                let valid = jsonwebtoken::crypto::verify(
                    signature,
                    signing_input.as_bytes(),
                    &decoding_key,
                    jwt_algorithm,
                )
                .unwrap();
                assert!(valid);
            })
        });

        if algorithm == SigningAlgorithm::Rs256 {
            let cached = verifier(&support::config(folder.path(), &keys, &[name], 10_000, ""));
            support::complete(cached.verify(&tokens[0])).unwrap();
            group.bench_function(BenchmarkId::new("hit", name), |b| {
                b.iter(|| support::complete(cached.verify(&tokens[0])).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
