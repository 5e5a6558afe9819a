#!/usr/bin/env bash
# Installs the system packages Carnet builds and tests against, only if one is missing.
# Idempotent; works as root (no sudo needed) or with sudo; skips apt entirely when
# everything is present.
set -euo pipefail

# package -> a file or command that shows it is installed
declare -A probes=(
  [clang]="command:clang"
  [libclang-dev]="glob:/usr/lib/llvm-*/lib/libclang.so"
  [pkg-config]="command:pkg-config"
  [softhsm2]="command:softhsm2-util"
  [iproute2]="command:ip"
  [iptables]="command:iptables-restore"
  [build-essential]="command:cc"
  [ca-certificates]="file:/etc/ssl/certs/ca-certificates.crt"
)

missing=()
for pkg in "${!probes[@]}"; do
  probe="${probes[$pkg]}"
  case "$probe" in
    command:*) command -v "${probe#command:}" >/dev/null 2>&1 || missing+=("$pkg") ;;
    file:*) [ -e "${probe#file:}" ] || missing+=("$pkg") ;;
    glob:*) compgen -G "${probe#glob:}" >/dev/null || missing+=("$pkg") ;;
  esac
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all system packages present"
else
  echo "install-deps: installing ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-deps: need root or sudo to install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update
  "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found; install Rust (https://rustup.rs) 1.85 or newer" >&2
  exit 1
fi
