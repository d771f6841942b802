//! The cost of a cache miss over the bare signature check, with both measured in alternation.
//!
//! The `verify` benchmark times a miss and the bare check seconds apart, and a virtual
//! machine's speed can drift by several percent in that time, which moves their ratio as
//! much as the sidecar's own work does. Here each round times a batch of misses, a batch of
//! misses with the cache on, and a batch of bare checks back to back, in an order that
//! rotates, so drift affects all three alike. It prints the median time of each and the
//! median and spread of the per-round ratios.
//!
//! Run: `cargo bench -p portcullis --bench verify_overhead [-- ALGORITHM]`, best on an idle
//! machine and pinned to one core (`taskset -c 0`).

mod support;

use std::hint::black_box;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_loadtest::keys::SigningAlgorithm;
use support::{complete, parsed_public_key, verifier};

const ALGORITHMS: [SigningAlgorithm; 3] = [
    SigningAlgorithm::Rs256,
    SigningAlgorithm::Es256,
    SigningAlgorithm::EdDsa,
];

/// Tokens cycled through, as in the `verify` benchmark.
const TOKENS: usize = 64;
/// Rounds per algorithm, and operations per batch: about a second in all for RS256.
const ROUNDS: usize = 101;
const BATCH: usize = 256;

/// The three operations a round times.
#[derive(Clone, Copy)]
enum Operation {
    Miss,
    MissCached,
    SignatureOnly,
}

fn main() {
    // Cargo passes `--bench`; any other argument chooses algorithms by name.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|argument| !argument.starts_with("--"))
        .collect();
    println!(
        "{:<7} {:>11} {:>11} {:>11}   {:<32} miss with the cache on over the bare check",
        "", "bare check", "miss", "miss cached", "miss over the bare check"
    );
    for algorithm in ALGORITHMS {
        let name = algorithm.name();
        if filters.is_empty() || filters.iter().any(|filter| name.contains(filter.as_str())) {
            measure(algorithm);
        }
    }
}

fn measure(algorithm: SigningAlgorithm) {
    let name = algorithm.name();
    let folder = tempfile::tempdir().unwrap();
    let keys = support::keys(algorithm, 1);
    let tokens = support::tokens(&keys[0], TOKENS);
    let no_cache = verifier(&support::config(folder.path(), &keys, &[name], 0, ""));
    // One entry, filled with a token outside the cycle, so every token of the cycle misses.
    let one_entry = verifier(&support::config(folder.path(), &keys, &[name], 1, ""));
    complete(one_entry.verify(&tokens[0])).unwrap();
    let public_key = parsed_public_key(&keys[0], algorithm);
    let signed: Vec<(&str, Vec<u8>)> = tokens
        .iter()
        .map(|token| {
            let (signing_input, signature) = token.rsplit_once('.').unwrap();
            (signing_input, URL_SAFE_NO_PAD.decode(signature).unwrap())
        })
        .collect();

    // Nanoseconds per operation, per round, in the order of `Operation`.
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    let order = [
        Operation::Miss,
        Operation::MissCached,
        Operation::SignatureOnly,
    ];
    // The first round warms caches and frequency and is not kept.
    for round in 0..=ROUNDS {
        for step in 0..order.len() {
            let operation = order[(round + step) % order.len()];
            let started = Instant::now();
            for index in 0..BATCH {
                let token = index % (TOKENS - 1) + 1;
                match operation {
                    Operation::Miss => {
                        black_box(complete(no_cache.verify(&tokens[token])).unwrap());
                    }
                    Operation::MissCached => {
                        black_box(complete(one_entry.verify(&tokens[token])).unwrap());
                    }
                    Operation::SignatureOnly => {
                        let (signing_input, signature) = &signed[token];
                        public_key
                            .verify_sig(black_box(signing_input.as_bytes()), signature)
                            .unwrap();
                    }
                }
            }
            let nanos = started.elapsed().as_nanos() as f64 / BATCH as f64;
            if round > 0 {
                times[operation as usize].push(nanos);
            }
        }
    }

    let [miss, miss_cached, bare] = &times;
    let percent_over = |slower: &[f64]| -> Vec<f64> {
        slower
            .iter()
            .zip(bare)
            .map(|(slower, bare)| (slower / bare - 1.0) * 100.0)
            .collect()
    };
    println!(
        "{name:<7} {:>8.2} us {:>8.2} us {:>8.2} us   {:<32} {}",
        median(bare) / 1000.0,
        median(miss) / 1000.0,
        median(miss_cached) / 1000.0,
        spread(percent_over(miss)),
        spread(percent_over(miss_cached)),
    );
}

/// Describes percentages by their median and the range of the middle 80% of them.
fn spread(mut percent: Vec<f64>) -> String {
    percent.sort_by(f64::total_cmp);
    let at = |fraction: f64| percent[((percent.len() - 1) as f64 * fraction).round() as usize];
    format!(
        "{:+.1}% (rounds {:+.1}% to {:+.1}%)",
        at(0.5),
        at(0.1),
        at(0.9)
    )
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
