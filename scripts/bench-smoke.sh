#!/usr/bin/env bash
# Benchmark smoke run for CI: proves `carnet-testnet bench` works end to end (a fresh
# 4-node network, 5 s of open-loop load, the table printed). No timed assertions: the
# figures are printed, never checked. Budget: ≤ 60 s of wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARNET_BIN_DIR="${CARNET_BIN_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/release}"

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

# The batched submission path (POST /v1/document-batches): 5 s at 1,000 documents/s in
# requests of 64. The report must count acknowledged documents and no malformed batch
# answer; the rate and latencies are printed, never checked.
echo "-- carnet-testnet bench --nodes 4 --duration 5 --rate 1000 --batch-docs 64"
report="$(mktemp -t carnet-bench-smoke.XXXXXX.json)"
"$CARNET_BIN_DIR/carnet-testnet" bench --nodes 4 --duration 5 --rate 1000 --batch-docs 64 --report "$report"
python3 - "$report" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["result"]
assert r["sent"] == 5000 and r["acknowledged"] > 0, f"batched bench: {r['acknowledged']} of {r['sent']} acknowledged"
assert "malformed" not in r["errors"], f"batched bench: malformed answers {r['errors']}"
PY
rm -f "$report"
