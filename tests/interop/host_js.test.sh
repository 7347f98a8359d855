#!/usr/bin/env bash
# dmsnet against js-libp2p 3, both directions: ping, identify, pnet, perf, 200 streams.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_dmsnet
require_node

# ---------- js dials the C daemon
start_dmsnet_daemon c --listen /ip4/127.0.0.1/tcp/0 --data-dir "$WORK/c" --enable-perf
C_MA=$DMSNET_MA C_ID=$DMSNET_PEER_ID C_PID=$DMSNET_PID

log "js -> C: ping and identify"
run_js js-ping --dial "$C_MA" --ping 3 --identify || fail "js could not ping/identify the C daemon"
[ "$(js_get "$WORK/js-ping.out" ping 'all.length')" = 3 ] || fail "js: expected 3 ping replies"
agent=$(js_get "$WORK/js-ping.out" peer:identify agentVersion) || fail "js: no identify result"
case "$agent" in dmsnet/*) ;; *) fail "js sees agent '$agent', want dmsnet/<version>" ;; esac
[ "$(js_get "$WORK/js-ping.out" peer:identify publicKeyMatchesPeerId)" = true ] ||
    fail "js: the C node's identify public key does not match its peer id"
[ "$(js_get "$WORK/js-ping.out" peer:identify 'peerId')" = "$C_ID" ] || fail "js: wrong peer id"
for p in /ipfs/ping/1.0.0 /ipfs/id/1.0.0 /ipfs/id/push/1.0.0 /perf/1.0.0; do
    [ "$(js_get "$WORK/js-ping.out" peer:identify "protocols.includes('$p')")" = true ] ||
        fail "js: C node does not announce $p"
done
[ "$(js_get "$WORK/js-ping.out" peer:identify "listenAddrs.some(a => a.includes('/tcp/'))")" = true ] ||
    fail "js: C node announced no TCP listen address"

log "js -> C: perf 256 MiB each way"
run_js js-perf --dial "$C_MA" --perf-upload $((256 << 20)) --perf-download $((256 << 20)) --timeout 120 ||
    fail "js perf against the C daemon failed"
log "js->C perf: $(js_get "$WORK/js-perf.out" perf 'uploadGbps + " Gbit/s up, " + downloadGbps + " Gbit/s down"')"

log "js -> C: 200 concurrent perf streams on one connection"
run_js js-perf200 --dial "$C_MA" --perf-upload 65536 --perf-download 65536 --streams 200 --timeout 60 ||
    fail "js perf with 200 streams against the C daemon failed"

# ---------- C dials a js listener
start_js_listener js --listen /ip4/127.0.0.1/tcp/0 --perf-server
J_MA=$JS_MA J_ID=$JS_PEER_ID J_OUT=$JS_OUT

log "C -> js: ping"
"$DMSNET" ping "$J_MA" -c 3 -i 0 >"$WORK/c-ping.out" 2>"$WORK/c-ping.err" || fail "C could not ping js"
[ "$(count_lines "$WORK/c-ping.out" 'time=[0-9.]+ ms')" = 3 ] || fail "C: expected 3 ping replies"

log "C -> js: identify, both ways"
"$DMSNET" identify "$J_MA" >"$WORK/c-id.out" 2>"$WORK/c-id.err" || fail "C could not identify js"
grep -q "^peer: $J_ID\$" "$WORK/c-id.out" || fail "C: identify shows the wrong peer"
grep -q '^agent: .\+' "$WORK/c-id.out" || fail "C: js sent no agent version"
grep -q '^public-key: ed25519 (matches the peer id)' "$WORK/c-id.out" || fail "C: js public key does not match"
grep -q '^protocol: /ipfs/ping/1.0.0$' "$WORK/c-id.out" || fail "C: js does not announce ping"
grep -q '^listen: /ip4/127.0.0.1/tcp/' "$WORK/c-id.out" || fail "C: js announced no listen address"
wait_for_line "$J_OUT" '"event":"peer:identify".*"agentVersion":"dmsnet/' 10 >/dev/null ||
    fail "js listener did not identify the C dialer as dmsnet"

log "C -> js: perf 256 MiB each way"
"$DMSNET" perf "$J_MA" --upload 256M --download 256M --json >"$WORK/c-perf.out" 2>"$WORK/c-perf.err" ||
    fail "C perf against js failed"
log "C->js perf: $(cat "$WORK/c-perf.out")"
log "C -> js: 200 concurrent perf streams"
"$DMSNET" perf "$J_MA" --upload 64K --download 64K --streams 200 >"$WORK/c-perf200.out" \
    2>"$WORK/c-perf200.err" || fail "C perf with 200 streams against js failed"

# ---------- pnet in both directions
make_swarm_key "$WORK/swarm.key"
make_swarm_key "$WORK/other.key"
start_dmsnet_daemon cp --listen /ip4/127.0.0.1/tcp/0 --data-dir "$WORK/cp" --enable-perf \
    --swarm-key "$WORK/swarm.key"
CP_MA=$DMSNET_MA CP_PID=$DMSNET_PID
start_js_listener jsp --listen /ip4/127.0.0.1/tcp/0 --perf-server --psk "$WORK/swarm.key"
JP_MA=$JS_MA JP_PID=$JS_PID

log "pnet: js -> C and C -> js with the same key"
run_js jsp-ping --dial "$CP_MA" --psk "$WORK/swarm.key" --ping 2 || fail "js -> C ping over pnet failed"
"$DMSNET" ping "$JP_MA" -c 2 -i 0 --swarm-key "$WORK/swarm.key" >"$WORK/cp-ping.out" 2>&1 ||
    fail "C -> js ping over pnet failed"

log "pnet: perf 16 MiB each way, both directions"
run_js jsp-perf --dial "$CP_MA" --psk "$WORK/swarm.key" --perf-upload $((16 << 20)) --perf-download $((16 << 20)) ||
    fail "js -> C perf over pnet failed"
"$DMSNET" perf "$JP_MA" --upload 16M --download 16M --swarm-key "$WORK/swarm.key" \
    >"$WORK/cp-perf.out" 2>&1 || fail "C -> js perf over pnet failed"

log "pnet: another key, or none, fails cleanly on both sides"
run_js jsp-bad --dial "$CP_MA" --psk "$WORK/other.key" --ping 1 --timeout 10 &&
    fail "js with another swarm key reached the C daemon"
run_js jsp-none --dial "$CP_MA" --ping 1 --timeout 10 && fail "js without a swarm key reached the C daemon"
"$DMSNET" ping "$JP_MA" -c 1 --timeout 5 --swarm-key "$WORK/other.key" >"$WORK/cp-bad.out" 2>&1 &&
    fail "C with another swarm key reached js"
"$DMSNET" ping "$JP_MA" -c 1 --timeout 5 >"$WORK/cp-none.out" 2>&1 && fail "C without a swarm key reached js"
kill -0 "$CP_PID" || fail "the C daemon died after bad pnet peers"
kill -0 "$JP_PID" || fail "the js listener died after bad pnet peers"
run_js jsp-again --dial "$CP_MA" --psk "$WORK/swarm.key" --ping 1 || fail "C daemon stopped serving good peers"
"$DMSNET" ping "$JP_MA" -c 1 --swarm-key "$WORK/swarm.key" >/dev/null 2>&1 || fail "js stopped serving good peers"

# peer.mjs works around a js bug that made this suite flaky (js/README.md, "pnet: the xsalsa20
# memory bug"): check that it held in every js peer that used pnet, so a run where it did not
# fails here, saying why, instead of by chance in a perf step.
stop_pid "$JP_PID" || fail "the js pnet listener did not exit 0 on SIGTERM"
for f in jsp jsp-ping jsp-perf jsp-again; do
    why=$(js_pnet_no_leak "$WORK/$f.out") || fail "$why"
done

stop_pid "$C_PID" || fail "C daemon did not exit 0 on SIGTERM"
stop_pid "$CP_PID" || fail "C pnet daemon did not exit 0 on SIGTERM"
echo "PASS"
