#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, the test suites of every crate, the demo's
# walkthrough on the book's ports, the deployment files against their schemas, and a
# few-second smoke run of the benchmark runner. Needs the Rust toolchain and Python 3;
# installs curl when missing because some tests run the book's curl commands, iproute2 for
# the pods test, the schema validators from PyPI (scripts/validate-deploy.sh), and the
# benchmark runner installs wrk when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v curl >/dev/null 2>&1; then
    echo "==> installing curl (used by the tests that run the book's commands)"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq curl >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq curl >/dev/null
    fi
fi

# The pods test (demo/tests/pods.rs) builds pods from network namespaces with iproute2. As
# root it must run, not skip: CI runs as root.
if [ "$(id -u)" = 0 ]; then
    if ! command -v ip >/dev/null 2>&1; then
        echo "==> installing iproute2 (used by the network-namespace pods test)"
        apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null
    fi
    export PORTCULLIS_PODS_TEST=require
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --locked

echo "==> deployment files: compose.yaml and every Kubernetes manifest against their schemas"
scripts/validate-deploy.sh

echo "==> demo walkthrough on the book's ports"
data_dir="$(mktemp -d)"
trap 'rm -rf "$data_dir"' EXIT
cargo run --locked -q -p portcullis-demo -- --data-dir "$data_dir" --walkthrough

echo "==> benchmark runner unit tests"
python3 -m unittest discover -s loadtest/tests -t loadtest

echo "==> benchmark smoke run: Portcullis and direct, one second per scenario"
bench_dir="$(mktemp -d)"
trap 'rm -rf "$data_dir" "$bench_dir"' EXIT
loadtest/bench --smoke --debug-build --contenders direct,portcullis --results-dir "$bench_dir"
test -s "$bench_dir/latest.json"

echo "==> all checks passed"
