#!/usr/bin/env bash
# Builds the carnet-node docker image(s) FROM scratch, from files made here only.
#
#   testnet/docker/build-image.sh [--binary PATH] [--tag TAG]
#                                 [--faulty-binary PATH] [--faulty-tag TAG] [--force]
#
# For each binary it makes a root filesystem under target/docker/<tag>/rootfs:
#   /usr/local/bin/carnet-node   the binary
#   every shared library `ldd` lists, at the path the loader looks for it, and the loader
#   /etc/passwd, /etc/group      root, carnet (10001) and nobody
#   /etc/nsswitch.conf, /etc/hosts
#   /tmp (1777), /carnet/home    (the compose file mounts a tmpfs and the node home there)
# then runs `docker build` with testnet/docker/Dockerfile. Nothing is pulled.
#
# Idempotent and fast when nothing changed: the image carries the label
# org.carnet.build-sha256 (hash of the binary, the Dockerfile and this script); when the
# existing image has the same label nothing is rebuilt; after a rebuild the image the tag
# named before is removed (unless a container uses it). Builds of one tag are serialised
# with flock, so parallel tests never race on the rootfs.
#
# Defaults: --binary $CARNET_NODE_BIN or target/release/carnet-node, --tag
# $CARNET_IMAGE or carnet-node:local; --faulty-binary $CARNET_FAULTY_BIN (the binary built
# with `--features byzantine`; skipped when unset), --faulty-tag $CARNET_FAULTY_IMAGE or
# carnet-node-faulty:local. Exit 0 when every requested image is current.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

binary="${CARNET_NODE_BIN:-$repo/target/release/carnet-node}"
tag="${CARNET_IMAGE:-carnet-node:local}"
faulty_binary="${CARNET_FAULTY_BIN:-}"
faulty_tag="${CARNET_FAULTY_IMAGE:-carnet-node-faulty:local}"
force=0

die() { echo "build-image.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a name}"; shift 2 ;;
    --faulty-binary) faulty_binary="${2:?--faulty-binary needs a path}"; shift 2 ;;
    --faulty-tag) faulty_tag="${2:?--faulty-tag needs a name}"; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

command -v docker >/dev/null || die "docker is not installed"
command -v ldd >/dev/null || die "ldd is not installed (package libc-bin)"

# Copies FILE into ROOTFS at the same path, following symlinks (the loader opens the
# path ldd printed; the rootfs holds a regular file there).
copy_into_rootfs() {
  local file="$1" rootfs="$2"
  mkdir -p "$rootfs$(dirname "$file")"
  cp -L --preserve=mode "$file" "$rootfs$file"
}

# Prints the absolute paths of the libraries and the loader BINARY needs; fails if ldd
# cannot resolve one of them.
libraries_of() {
  local binary="$1" out
  out="$(ldd "$binary" 2>&1)" || {
    if grep -q "not a dynamic executable" <<<"$out"; then return 0; fi
    die "ldd $binary failed: $out"
  }
  if grep -q "not found" <<<"$out"; then
    die "ldd cannot resolve every library of $binary:"$'\n'"$out"
  fi
  # "libx.so.1 => /lib/.../libx.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
  # linux-vdso has no path and is skipped.
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out" | sort -u
}

make_rootfs() {
  local binary="$1" rootfs="$2" lib
  rm -rf "$rootfs"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/carnet/home"
  chmod 1777 "$rootfs/tmp"
  cp -L "$binary" "$rootfs/usr/local/bin/carnet-node"
  chmod 0755 "$rootfs/usr/local/bin/carnet-node"
  for lib in $(libraries_of "$binary"); do
    copy_into_rootfs "$lib" "$rootfs"
  done
  cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
carnet:x:10001:10001:carnet node:/carnet:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
  cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
carnet:x:10001:
nogroup:x:65534:
GROUP
  cat >"$rootfs/etc/nsswitch.conf" <<'NSS'
passwd: files
group:  files
hosts:  files dns
NSS
  cat >"$rootfs/etc/hosts" <<'HOSTS'
127.0.0.1 localhost
::1       localhost ip6-localhost ip6-loopback
HOSTS
}

# Builds TAG from BINARY unless the image is current.
build_one() {
  local binary="$1" tag="$2"
  [ -f "$binary" ] || die "no binary at $binary (build it: cargo build --release -p carnet-node)"
  [ -x "$binary" ] || die "$binary is not executable"
  local want
  want="$(cat "$binary" "$here/Dockerfile" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
  local context="$repo/target/docker/${tag//[^A-Za-z0-9_.-]/_}"
  mkdir -p "$context"
  exec 9>"$context.lock"
  flock 9
  local have
  have="$(docker image inspect --format '{{ index .Config.Labels "org.carnet.build-sha256" }}' "$tag" 2>/dev/null || true)"
  if [ "$force" = 0 ] && [ "$have" = "$want" ]; then
    echo "$tag is up to date (${want:0:12})"
    exec 9>&-
    return 0
  fi
  local previous
  previous="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
  make_rootfs "$binary" "$context/rootfs"
  cp "$here/Dockerfile" "$context/Dockerfile"
  local log="$context/build.log"
  # The classic builder needs no buildx plugin and no network; the context holds only
  # the rootfs made above.
  if ! DOCKER_BUILDKIT=0 docker build --pull=false --build-arg "BUILD_SHA256=$want" \
      -t "$tag" -f "$context/Dockerfile" "$context" >"$log" 2>&1; then
    cat "$log" >&2
    die "docker build of $tag failed (log: $log)"
  fi
  echo "$tag built from $binary (${want:0:12}, $(du -sh "$context/rootfs" | cut -f1) rootfs)"
  # The image this tag named before is now untagged: remove it unless a container still
  # uses it, so repeated builds do not pile up.
  local current
  current="$(docker image inspect --format '{{.Id}}' "$tag")"
  if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
  fi
  exec 9>&-
}

docker info >/dev/null 2>&1 || die "docker does not answer (is the daemon running? try: docker info)"
build_one "$binary" "$tag"
if [ -n "$faulty_binary" ]; then
  build_one "$faulty_binary" "$faulty_tag"
fi
