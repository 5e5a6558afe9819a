#!/usr/bin/env bash
# Everything CI checks: formatting, lints, the whole test suite (unit, simulation and the
# multi-process network tests), then the benchmark smoke run if there is one. One cargo
# profile (release) throughout, so the dependency graph is built once.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
# Where cargo puts its builds (CARGO_TARGET_DIR, if set, may be shared with another clone).
TARGET="${CARGO_TARGET_DIR:-target}"
TARGET="$(mkdir -p "$TARGET" && cd "$TARGET" && pwd)"
cargo build --release --workspace --all-targets
# Special carnet-node builds, each copied out of target/release so the release binary
# never carries their features: faulty (Byzantine modes + test hooks, the scenario
# suite), mutant (quorum lowered to f+1: proof the invariants bite), hooks (an honest
# node that hands document keys to tests: the erasure byte scan). `--workspace` keeps
# the dependency features those of the main build, so only carnet-node recompiles.
special_build() { # DIR FEATURES
  cargo build --release --workspace --features "$2"
  mkdir -p "$TARGET/$1"
  cp "$TARGET/release/carnet-node" "$TARGET/$1/carnet-node"
}
special_build faulty carnet-node/byzantine,carnet-node/test-hooks
special_build mutant carnet-node/mutation-weak-quorum
special_build hooks carnet-node/test-hooks
cargo build --release --workspace --all-targets
export CARNET_FAULTY_BIN=$TARGET/faulty/carnet-node
export CARNET_MUTANT_BIN=$TARGET/mutant/carnet-node
export CARNET_HOOKS_BIN=$TARGET/hooks/carnet-node

export CARNET_BIN_DIR="$TARGET/release"

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
