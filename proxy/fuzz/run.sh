#!/usr/bin/env bash
# Runs each fuzz target for a bounded time (default 60 seconds each, or the
# first argument) and stops at the first crash. Needs cargo-fuzz (`cargo install
# cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept the nightly flags that
# cargo-fuzz passes for the sanitizer and coverage instrumentation.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
# Build against the versions the workspace pins; cargo adds the fuzz-only crates.
if [ ! -f Cargo.lock ]; then
    cp ../../Cargo.lock Cargo.lock
fi
export RUSTC_BOOTSTRAP=1

for target in token_verify jwks_parse credentials request_path request_head; do
    echo "==> fuzzing $target for $seconds seconds"
    mkdir -p "corpus/$target"
    # New inputs go to corpus/<target>; seeds/<target> contains the committed starting cases.
    cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048
done
echo "==> no crash found"
