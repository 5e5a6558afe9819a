#!/usr/bin/env bash
# Everything CI checks: formatting, lints, the whole test suite (unit, simulation and the
# multi-process network tests), then the benchmark smoke run if there is one. One cargo
# profile (release) throughout, so the dependency graph is built once.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --release --workspace --all-targets
# Fault-injection binaries for the scenario suite (testnet/tests/scenarios.rs), built apart
# so the release carnet-node never carries these features.
cargo build --release -p carnet-node --features byzantine,test-hooks && mkdir -p target/faulty && cp target/release/carnet-node target/faulty/carnet-node && cargo build --release -p carnet-node
export CARNET_FAULTY_BIN=$PWD/target/faulty/carnet-node
cargo build --release -p carnet-node --features mutation-weak-quorum && mkdir -p target/mutant && cp target/release/carnet-node target/mutant/carnet-node && cargo build --release -p carnet-node
export CARNET_MUTANT_BIN=$PWD/target/mutant/carnet-node

export CARNET_BIN_DIR="$PWD/target/release"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --release --workspace --all-targets -- -D warnings

echo "== cargo test"
cargo test --release --workspace

# Bench smoke: the benches run once, in the same release-derived profile (no new build).
if [ -f scripts/bench-smoke.sh ]; then
  echo "== bench smoke"
  bash scripts/bench-smoke.sh
elif [ -f consensus/benches/engine.rs ]; then
  echo "== bench smoke"
  cargo bench -p carnet-consensus --bench engine
fi

echo "test.sh: all checks passed"
