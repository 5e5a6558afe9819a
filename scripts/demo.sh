#!/usr/bin/env bash
# The five-minute tour: a 4-administration testnet on this machine, and one export
# declaration exchanged between customs administrations with the `carnet` CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --release --workspace --all-targets

BIN="${CARGO_TARGET_DIR:-$PWD/target}/release"
export CARNET_BIN_DIR="$BIN"
export PATH="$BIN:$PATH"
REPO="$PWD"
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
  "UCR": "$UCR",
  "ExporterName": "Adjikistan Copper Exports Ltd",
  "ConsigneeName": "Borastria Metals",
  "CommodityCode": "740311",
  "GoodsDescription": "copper cathodes",
  "NetMass": 24000,
  "Quantity": 24,
  "OriginCountry": "XA",
  "DestinationCountry": "XB",
  "ExitOffice": "XA000123",
  "TransportMode": "road",
  "TransportMeansId": "XA-4471-KT"
}
JSON

XA="$NET/profiles/XA.toml"; XB="$NET/profiles/XB.toml"; XC="$NET/profiles/XC.toml"
AGREEMENTS="$REPO/testnet/agreements"
# The value of "key" in the JSON on stdin (first match).
field() { sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" | head -n1; }
# Runs a command that must fail with exit code $1.
must_fail() {
  local want=$1; shift
  set +e; run "$@"; local code=$?; set -e
  echo "exit code: $code"
  if [ "$code" -ne "$want" ]; then echo "demo: expected exit code $want, got $code" >&2; exit 1; fi
}

echo
echo "# XA and XB agree on 'your export is my entry' (a GNC Utility Block): XA proposes, XB accepts."
run carnet --profile "$XA" agreement list
run carnet --profile "$XA" agreement propose --file "$AGREEMENTS/export-import.json"
run carnet --profile "$XB" agreement accept 0a000000000000000000000000000001

echo
echo "# XA (Adjikistan) exports copper to XB (Borastria): the XA officer files the declaration under it."
run carnet --profile "$XA" status
run carnet --profile "$XA" doc submit --agreement 0a000000000000000000000000000001 \
  --kind export-declaration --ucr "$UCR" --to XB --file export.json
ID="$(carnet --profile "$XA" --output json doc find --ucr "$UCR" | field id)"

echo
echo "# An element outside the agreement's data cluster is refused, named (exit code 2)."
sed 's/"TransportMode"/"PassportNumber"/' export.json > export-bad.json
must_fail 2 carnet --profile "$XA" doc submit --agreement 0a000000000000000000000000000001 \
  --kind export-declaration --ucr "$UCR-B" --to XB --file export-bad.json

echo
echo "# XB (Borastria) is pushed the declaration, finds it by its UCR and reads it."
run carnet --profile "$XB" watch --from-height 1 --count 1
run carnet --profile "$XB" doc find --ucr "$UCR"
run carnet --profile "$XB" doc show "$ID"
run carnet --profile "$XB" doc decrypt "$ID" --purpose "import clearance"

echo
echo "# XC (Concordia) is not a recipient: the node refuses (exit code 3 = denied)."
must_fail 3 carnet --profile "$XC" doc decrypt "$ID" --purpose "curiosity"

echo
echo "# XB pre-fills its import declaration from the export data, declares 23 t instead of 24,"
echo "# files it, and matches the consignment by UCR: the quantity mismatch is flagged."
run carnet --profile "$XB" doc prefill --from "$ID" --kind import-declaration --out import.json
sed 's/"Quantity": *24/"Quantity": 23/' import.json > import-23.json
run carnet --profile "$XB" doc submit --agreement 0defa017000000000000000000000000 \
  --kind import-declaration --ucr "$UCR" --to XA --file import-23.json
run carnet --profile "$XB" ucr match "$UCR"

echo
echo "# XC asks XA for the declaration under WTO TFA Article 12; XA provides it; XC reads it for"
echo "# the stated purpose only, and every read is on the ledger."
PURPOSE="Verification of the declared origin of copper re-exported to Concordia"
run carnet --profile "$XC" request create --to XA --doc "$ID" --purpose "$PURPOSE" \
  --legal-basis "WTO TFA Art. 12; MoU XA-XC" --items OriginCountry,CommodityCode,Quantity
RID="$(carnet --profile "$XC" --output json request list | field id)"
run carnet --profile "$XA" request list
run carnet --profile "$XA" request answer "$RID" --provide "$ID"
for _ in $(seq 1 40); do
  carnet --profile "$XC" doc decrypt "$ID" --purpose "$PURPOSE" --request "$RID" >/dev/null 2>&1 && break
  sleep 0.25
done
run carnet --profile "$XC" doc decrypt "$ID" --purpose "$PURPOSE" --request "$RID"
run carnet --profile "$XA" audit --doc "$ID"

echo
run carnet-testnet down --dir "$NET"
trap - EXIT
cd /
rm -rf "$DIR"
echo
echo "demo: done"
