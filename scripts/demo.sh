#!/usr/bin/env bash
# The five-minute tour: a 4-administration testnet on this machine, and one export
# declaration exchanged between customs administrations with the `carnet` CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --release --workspace --all-targets

BIN="$PWD/target/release"
export CARNET_BIN_DIR="$BIN"
export PATH="$BIN:$PATH"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/carnet-demo.XXXXXX")"
cd "$DIR"
NET=net

# Echoes a command (shell-quoted) before running it.
run() {
  printf '\n\033[1m$'
  printf ' %q' "$@"
  printf '\033[0m\n'
  "$@"
}

cleanup() {
  carnet-testnet down --dir "$NET" >/dev/null 2>&1 || true
}
trap cleanup EXIT

run carnet-testnet init --nodes 4 --dir "$NET"
run carnet-testnet up --dir "$NET"
run carnet-testnet status --dir "$NET"

UCR="24XA$(date +%s)-EXP-0001"
cat > export.json <<JSON
{
  "ucr": "$UCR",
  "declarant": "Adjikistan Copper Exports Ltd",
  "consignee": "Borastria Metals",
  "goods": [{"hs": "740311", "description": "copper cathodes", "net_kg": 24000}],
  "exit_office": "XA000123",
  "transport": {"mode": "road", "vehicle": "XA-4471-KT"}
}
JSON

echo
echo "# XA (Adjikistan) exports copper to XB (Borastria): the XA officer submits the declaration."
run carnet --profile "$NET/profiles/XA.toml" status
run carnet --profile "$NET/profiles/XA.toml" doc submit \
  --kind export-declaration --ucr "$UCR" --to XB --file export.json
ID="$(carnet --profile "$NET/profiles/XA.toml" --output json doc find --ucr "$UCR" \
  | sed -n 's/.*"id": *"\([0-9a-f]*\)".*/\1/p' | head -n1)"

echo
echo "# XB (Borastria) finds the consignment by its UCR and reads the declaration."
run carnet --profile "$NET/profiles/XB.toml" doc find --ucr "$UCR"
run carnet --profile "$NET/profiles/XB.toml" doc show "$ID"
run carnet --profile "$NET/profiles/XB.toml" doc decrypt "$ID" --purpose "import clearance"

echo
echo "# XC (Concordia) is not a recipient: the node refuses (exit code 3 = denied)."
set +e
run carnet --profile "$NET/profiles/XC.toml" doc decrypt "$ID" --purpose "curiosity"
code=$?
set -e
echo "exit code: $code"
if [ "$code" -ne 3 ]; then
  echo "demo: expected exit code 3 for XC, got $code" >&2
  exit 1
fi

echo
run carnet-testnet down --dir "$NET"
trap - EXIT
cd /
rm -rf "$DIR"
echo
echo "demo: done"
