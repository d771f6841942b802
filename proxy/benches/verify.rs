//! Token verification cost: a cache miss (every check) per algorithm next to the bare
//! signature check it contains, and a cache hit.
//!
//! `signature_only` is aws-lc-rs's `ParsedPublicKey::verify_sig` alone, the primitive the
//! sidecar uses, on the same tokens and key. The key is parsed from the signing key's
//! SubjectPublicKeyInfo and the signatures are base64url-decoded before the timed loop, so
//! `miss` minus `signature_only` is the sidecar's own cost: decoding, parsing, key lookup
//! and claim checks. `miss_cached` is a miss with the cache on (the default): it adds the
//! cache key and bookkeeping, and its signature check reuses the key's digest of the signing
//! input instead of hashing it again.

mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portcullis_loadtest::keys::SigningAlgorithm;
use support::{parsed_public_key, verifier};

const ALGORITHMS: [SigningAlgorithm; 3] = [
    SigningAlgorithm::Rs256,
    SigningAlgorithm::Es256,
    SigningAlgorithm::EdDsa,
];

/// Tokens cycled through per algorithm; with the cache off, repeats still miss.
const TOKENS: usize = 64;

fn verification(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    for algorithm in ALGORITHMS {
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

        // The same miss with the cache on, as the sidecar runs by default: the key's digest
        // of the signing input is then reused by the signature check. The one entry the
        // cache may hold is a token outside the cycle, so every token of the cycle misses.
        let one_entry = verifier(&support::config(folder.path(), &keys, &[name], 1, ""));
        support::complete(one_entry.verify(&tokens[0])).unwrap();
        let mut next = 0;
        group.bench_function(BenchmarkId::new("miss_cached", name), |b| {
            b.iter(|| {
                next = next % (TOKENS - 1) + 1;
                support::complete(one_entry.verify(&tokens[next])).unwrap()
            })
        });

        let mut next = 0;
        group.bench_function(BenchmarkId::new("parse_only", name), |b| {
            b.iter(|| {
                next = (next + 1) % TOKENS;
                let token = portcullis::verify::parse_token(&tokens[next]).unwrap();
                token.claims().unwrap();
                token
            })
        });

        let public_key = parsed_public_key(&keys[0], algorithm);
        let signed = support::signed_parts(&tokens);
        let mut next = 0;
        group.bench_function(BenchmarkId::new("signature_only", name), |b| {
            b.iter(|| {
                next = (next + 1) % TOKENS;
                let (signing_input, signature) = &signed[next];
                public_key
                    .verify_sig(signing_input.as_bytes(), signature)
                    .unwrap();
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
