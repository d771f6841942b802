//! The cost of a cache miss over the bare signature check, with both measured in alternation.
//!
//! The `verify` benchmark times a miss and the bare check seconds apart, and a virtual
//! machine's speed can drift by several percent in that time, which moves their ratio as
//! much as the sidecar's own work does. Here each round times four batches back to back, in
//! an order that rotates, so drift affects all alike: misses without the cache, misses with
//! a full cache, misses with an empty cache that keeps every token, and bare checks. It
//! prints the median time of each and the median and spread of the per-round ratios.
//!
//! Run: `cargo bench -p portcullis --bench verify_overhead [-- [--json] ALGORITHM...]`, best
//! on an idle machine and pinned to one core (`taskset -c 0`). With `--json` it prints one
//! JSON document instead of the table, which `loadtest/bench` reads.

mod support;

use std::hint::black_box;
use std::time::Instant;

use portcullis_loadtest::keys::SigningAlgorithm;
use support::{complete, parsed_public_key, verifier};

const ALGORITHMS: [SigningAlgorithm; 3] = [
    SigningAlgorithm::Rs256,
    SigningAlgorithm::Es256,
    SigningAlgorithm::EdDsa,
];

/// Rounds per algorithm, and operations per batch: about two seconds in all for RS256.
const ROUNDS: usize = 101;
const BATCH: usize = 256;
/// Tokens: one to fill the one-entry cache, then one for each operation of a batch, so that
/// a batch into an empty cache inserts every token.
const TOKENS: usize = BATCH + 1;
/// Entries of the cache that has room, as in the sidecar's default configuration.
const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// The operations a round times.
#[derive(Clone, Copy)]
enum Operation {
    /// A miss with the cache off.
    Miss,
    /// A miss with the cache on but full, as under a flood of new tokens: nothing is inserted.
    MissCached,
    /// A miss with the cache on and room in it: the verified token is inserted.
    MissInserted,
    SignatureOnly,
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let json = arguments.iter().any(|argument| argument == "--json");
    // Cargo passes `--bench`; any argument that is not an option chooses algorithms by name.
    let filters: Vec<&String> = arguments
        .iter()
        .filter(|argument| !argument.starts_with("--"))
        .collect();
    let chosen = ALGORITHMS.into_iter().filter(|algorithm| {
        filters.is_empty()
            || filters
                .iter()
                .any(|filter| algorithm.name().contains(filter.as_str()))
    });
    if !json {
        println!(
            "{:<7} {:>11} {:>11} {:>11} {:>13}   {:<32} {:<32} inserted miss over bare",
            "",
            "bare check",
            "miss",
            "miss cached",
            "miss inserted",
            "miss over bare",
            "cached miss over bare"
        );
    }
    let mut results = Vec::new();
    for algorithm in chosen {
        let overhead = measure(algorithm);
        if json {
            results.push(overhead.to_json());
        } else {
            overhead.print();
        }
    }
    if json {
        let document = serde_json::json!({
            "rounds": ROUNDS,
            "batch": BATCH,
            "algorithms": results,
        });
        println!("{document}");
    }
}

/// The figures of one algorithm.
struct Overhead {
    algorithm: &'static str,
    /// Median nanoseconds per operation, in the order of `Operation`.
    medians: [f64; 4],
    /// Per-round percentages of each kind of miss over the bare check.
    miss_over_bare: Vec<f64>,
    miss_cached_over_bare: Vec<f64>,
    miss_inserted_over_bare: Vec<f64>,
}

impl Overhead {
    fn print(&self) {
        let [miss, miss_cached, miss_inserted, bare] = self.medians;
        println!(
            "{:<7} {:>8.2} us {:>8.2} us {:>8.2} us {:>10.2} us   {:<32} {:<32} {}",
            self.algorithm,
            bare / 1000.0,
            miss / 1000.0,
            miss_cached / 1000.0,
            miss_inserted / 1000.0,
            describe(&Percentiles::of(self.miss_over_bare.clone())),
            describe(&Percentiles::of(self.miss_cached_over_bare.clone())),
            describe(&Percentiles::of(self.miss_inserted_over_bare.clone())),
        );
    }

    fn to_json(&self) -> serde_json::Value {
        let [miss, miss_cached, miss_inserted, bare] = self.medians;
        let percentiles = |values: &[f64]| {
            let found = Percentiles::of(values.to_vec());
            serde_json::json!({"median": found.median, "p10": found.p10, "p90": found.p90})
        };
        serde_json::json!({
            "algorithm": self.algorithm,
            "bare_us": bare / 1000.0,
            "miss_us": miss / 1000.0,
            "miss_cached_us": miss_cached / 1000.0,
            "miss_inserted_us": miss_inserted / 1000.0,
            "miss_over_bare_pct": percentiles(&self.miss_over_bare),
            "miss_cached_over_bare_pct": percentiles(&self.miss_cached_over_bare),
            "miss_inserted_over_bare_pct": percentiles(&self.miss_inserted_over_bare),
        })
    }
}

fn measure(algorithm: SigningAlgorithm) -> Overhead {
    let name = algorithm.name();
    let folder = tempfile::tempdir().unwrap();
    let keys = support::keys(algorithm, 1);
    let tokens = support::tokens(&keys[0], TOKENS);
    let no_cache = verifier(&support::config(folder.path(), &keys, &[name], 0, ""));
    // One entry, filled with a token outside the batch, so every token of the batch misses
    // and none is inserted.
    let one_entry = verifier(&support::config(folder.path(), &keys, &[name], 1, ""));
    complete(one_entry.verify(&tokens[0])).unwrap();
    let with_room = support::config(folder.path(), &keys, &[name], DEFAULT_CACHE_ENTRIES, "");
    let public_key = parsed_public_key(&keys[0], algorithm);
    let signed = support::signed_parts(&tokens);

    // Nanoseconds per operation, per round, in the order of `Operation`.
    let mut times = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let order = [
        Operation::Miss,
        Operation::MissCached,
        Operation::MissInserted,
        Operation::SignatureOnly,
    ];
    // The first round warms caches and frequency and is not kept.
    for round in 0..=ROUNDS {
        for step in 0..order.len() {
            let operation = order[(round + step) % order.len()];
            // A new cache for each batch of inserted misses, built before the clock starts.
            // Its first verification, of the token outside the batch, sets up the new key's
            // Montgomery constants, which a sidecar does once per key.
            let empty = matches!(operation, Operation::MissInserted).then(|| {
                let fresh = verifier(&with_room);
                complete(fresh.verify(&tokens[0])).unwrap();
                fresh
            });
            let started = Instant::now();
            for token in 1..=BATCH {
                match operation {
                    Operation::Miss => {
                        black_box(complete(no_cache.verify(&tokens[token])).unwrap());
                    }
                    Operation::MissCached => {
                        black_box(complete(one_entry.verify(&tokens[token])).unwrap());
                    }
                    Operation::MissInserted => {
                        // Built above for this operation.
                        let empty = empty.as_ref().unwrap();
                        black_box(complete(empty.verify(&tokens[token])).unwrap());
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

    let [miss, miss_cached, miss_inserted, bare] = &times;
    let percent_over = |slower: &[f64]| -> Vec<f64> {
        slower
            .iter()
            .zip(bare)
            .map(|(slower, bare)| (slower / bare - 1.0) * 100.0)
            .collect()
    };
    Overhead {
        algorithm: name,
        medians: times
            .each_ref()
            .map(|values| Percentiles::of(values.clone()).median),
        miss_over_bare: percent_over(miss),
        miss_cached_over_bare: percent_over(miss_cached),
        miss_inserted_over_bare: percent_over(miss_inserted),
    }
}

/// The median of some values and the bounds of their middle 80%.
struct Percentiles {
    median: f64,
    p10: f64,
    p90: f64,
}

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Percentiles {
        values.sort_by(f64::total_cmp);
        let at = |fraction: f64| values[((values.len() - 1) as f64 * fraction).round() as usize];
        Percentiles {
            median: at(0.5),
            p10: at(0.1),
            p90: at(0.9),
        }
    }
}

/// Describes percentages by their median and the range of their middle 80%.
fn describe(percent: &Percentiles) -> String {
    format!(
        "{:+.1}% (rounds {:+.1}% to {:+.1}%)",
        percent.median, percent.p10, percent.p90
    )
}
