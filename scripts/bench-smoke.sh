#!/usr/bin/env bash
# Benchmark smoke run for CI: proves `carnet-testnet bench` works end to end (a fresh
# 4-node network, 5 s of open-loop load, the table printed). No timed assertions: the
# figures are printed, never checked. Budget: ≤ 60 s of wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARNET_BIN_DIR="${CARNET_BIN_DIR:-$PWD/target/release}"

# The consensus engine bench (messages/s for n = 4 and n = 100, happy-path blocks per
# delta). `--workspace` keeps the feature resolution of the workspace build, so cargo
# reuses the dependencies it already built instead of rebuilding them for one package.
echo "-- cargo bench --workspace --bench engine"
cargo bench -q --workspace --bench engine

echo "-- carnet-testnet bench --nodes 4 --duration 5 --rate 200 --erasures 5"
report="$(mktemp -t carnet-bench-smoke.XXXXXX.json)"
"$CARNET_BIN_DIR/carnet-testnet" bench --nodes 4 --duration 5 --rate 200 --erasures 5 --report "$report"
test -s "$report"
grep -q '"all_attested_ms"' "$report"
rm -f "$report"
