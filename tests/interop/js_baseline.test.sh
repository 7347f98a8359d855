#!/usr/bin/env bash
# js-to-js baseline: proves the interop harness itself (js/peer.mjs and lib.sh) works before any
# C-vs-JS result is trusted. Two js-libp2p peers talk to each other over TCP+noise+yamux:
# identify, ping, perf (one stream and 200 parallel streams), a fixed --key identity, and a
# private network (same key works; a different key or no key fails cleanly on the dialer, and
# the listener keeps serving the next good dialer). Sizes are small so it runs in seconds.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_node
MIB=$((1024 * 1024))

expect() { # expect DESCRIPTION ACTUAL WANTED
    [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# --- plain listener with a fixed identity ---------------------------------------------------
KEY_ID=$(make_js_key "$WORK/id.key") || fail "make_js_key"
start_js_listener plain --perf-server --key "$WORK/id.key"
expect "listener peer id from --key" "$JS_PEER_ID" "$KEY_ID"
case $JS_MA in
/ip4/127.0.0.1/tcp/*/p2p/"$KEY_ID") ;;
*) fail "listening address '$JS_MA'" ;;
esac
PLAIN_MA=$JS_MA PLAIN_OUT=$JS_OUT

log "identify"
run_js ident --dial "$PLAIN_MA" --identify --timeout 15 || fail "identify dialer exited $?"
O=$WORK/ident.out
expect "identify peerId" "$(js_get "$O" peer:identify peerId)" "$KEY_ID"
expect "identify agentVersion" "$(js_get "$O" peer:identify agentVersion)" js-libp2p-interop
expect "identify protocolVersion" "$(js_get "$O" peer:identify protocolVersion)" ipfs/0.1.0
expect "identify key matches" "$(js_get "$O" peer:identify publicKeyMatchesPeerId)" true
expect "identify key type" "$(js_get "$O" peer:identify publicKeyType)" Ed25519
for p in /ipfs/id/1.0.0 /ipfs/ping/1.0.0 /perf/1.0.0; do
    expect "identify protocols has $p" \
        "$(js_get "$O" peer:identify "protocols.includes('$p')")" true
done
expect "identify listenAddrs" "$(js_get "$O" peer:identify 'listenAddrs[0]')" "${PLAIN_MA%/p2p/*}"
expect "identify signed record" \
    "$(js_get "$O" peer:identify 'signedPeerRecord.addrs[0]')" "${PLAIN_MA%/p2p/*}"
expect "connection muxer" "$(js_get "$O" connection:open multiplexer)" /yamux/1.0.0
expect "connection security" "$(js_get "$O" connection:open encryption)" /noise
expect "done line" "$(js_get "$O" 'done' '1')" 1
# ... and the listener identified the dialer in turn
DIALER_ID=$(js_get "$O" dialing peerId) || fail "no dialing line"
wait_for_line "$PLAIN_OUT" "\"event\":\"peer:identify\",\"peerId\":\"$DIALER_ID\"" 10 >/dev/null ||
    fail "listener did not identify the dialer"

log "ping x5 on one stream, x2 with js-libp2p's ping service"
run_js ping --dial "$PLAIN_MA" --ping 5 --timeout 15 || fail "ping dialer exited $?"
expect "ping replies" "$(js_get "$WORK/ping.out" ping 'all.length')" 5
expect "ping seq" "$(js_get "$WORK/ping.out" ping 'all.map(p => p.seq).join()')" 1,2,3,4,5
expect "ping rtt" "$(js_get "$WORK/ping.out" ping 'all.every(p => p.rtt >= 0 && p.rtt < 5000)')" true
run_js ping2 --dial "$PLAIN_MA" --ping 2 --ping-new-stream --timeout 15 ||
    fail "ping (new stream) dialer exited $?"
expect "ping replies (new stream)" "$(js_get "$WORK/ping2.out" ping 'all.length')" 2

log "perf 8 MiB each way"
served0=$(count_lines "$PLAIN_OUT" '"event":"perf:served"')
run_js perf --dial "$PLAIN_MA" --perf-upload $((8 * MIB)) --perf-download $((8 * MIB)) \
    --timeout 60 || fail "perf dialer exited $?"
expect "perf upload" "$(js_get "$WORK/perf.out" perf upload)" $((8 * MIB))
expect "perf download" "$(js_get "$WORK/perf.out" perf download)" $((8 * MIB))
expect "perf rates" "$(js_get "$WORK/perf.out" perf 'uploadGbps > 0 && downloadGbps > 0')" true
wait_for_line "$PLAIN_OUT" "\"event\":\"perf:served\".*\"received\":$((8 * MIB)),\"sent\":$((8 * MIB))" 10 \
    >/dev/null || fail "perf server did not report 8 MiB served"

log "perf upload-only and download-only"
run_js perfup --dial "$PLAIN_MA" --perf-upload $((1 * MIB)) --perf-download 0 --timeout 30 ||
    fail "upload-only perf exited $?"
expect "upload-only" "$(js_get "$WORK/perfup.out" perf 'upload + "/" + download')" "$MIB/0"
run_js perfdown --dial "$PLAIN_MA" --perf-upload 0 --perf-download $((1 * MIB)) --timeout 30 ||
    fail "download-only perf exited $?"
expect "download-only" "$(js_get "$WORK/perfdown.out" perf 'upload + "/" + download')" "0/$MIB"

log "perf 200 parallel streams on one connection"
run_js perf200 --dial "$PLAIN_MA" --perf-upload 65536 --perf-download 65536 --streams 200 \
    --timeout 60 || fail "200-stream perf dialer exited $?"
expect "200 streams" "$(js_get "$WORK/perf200.out" perf streams)" 200
expect "200 streams upload" "$(js_get "$WORK/perf200.out" perf upload)" $((200 * 65536))
expect "200 streams download" "$(js_get "$WORK/perf200.out" perf download)" $((200 * 65536))
expect "one connection" "$(js_get "$WORK/perf200.out" connection:open 'all.length')" 1
want=$((served0 + 1 + 2 + 200))
for ((i = 0; i < 100; i++)); do
    [ "$(count_lines "$PLAIN_OUT" '"event":"perf:served"')" -ge $want ] && break
    sleep 0.05
done
expect "perf streams served" "$(count_lines "$PLAIN_OUT" '"event":"perf:served"')" $want
expect "no perf errors on the server" "$(count_lines "$PLAIN_OUT" '"event":"perf:error"')" 0

log "a failed dial reports an error and exits 1"
run_js refused --dial "/ip4/127.0.0.1/tcp/1/p2p/$KEY_ID" --ping 1 --timeout 10
expect "refused exit status" $? 1
js_get "$WORK/refused.out" error message >/dev/null || fail "no error line for a refused dial"

log "garbage on a raw TCP connection does not hurt the listener"
port=${PLAIN_MA#/ip4/127.0.0.1/tcp/}
port=${port%%/*}
if exec 3<>"/dev/tcp/127.0.0.1/$port"; then
    head -c 4096 /dev/urandom >&3 2>/dev/null
    exec 3>&-
fi
run_js after-garbage --dial "$PLAIN_MA" --ping 1 --timeout 15 || fail "ping after garbage exited $?"
kill -0 "$JS_PID" 2>/dev/null || fail "listener died after garbage"

log "the listener exits 0 on SIGTERM"
stop_pid "$JS_PID"
expect "listener exit status" $? 0

# --- private network ------------------------------------------------------------------------
make_swarm_key "$WORK/swarm.key"
make_swarm_key "$WORK/other.key"
start_js_listener pnet --perf-server --psk "$WORK/swarm.key"
PNET_MA=$JS_MA PNET_OUT=$JS_OUT PNET_PID=$JS_PID

log "pnet: same key: ping + perf 8 MiB"
run_js pgood --dial "$PNET_MA" --psk "$WORK/swarm.key" --identify --ping 2 \
    --perf-upload $((8 * MIB)) --perf-download $((8 * MIB)) --timeout 60 ||
    fail "pnet dialer with the right key exited $?"
expect "pnet identify" "$(js_get "$WORK/pgood.out" peer:identify peerId)" "$JS_PEER_ID"
expect "pnet pings" "$(js_get "$WORK/pgood.out" ping 'all.length')" 2
expect "pnet perf" "$(js_get "$WORK/pgood.out" perf 'upload + "/" + download')" \
    "$((8 * MIB))/$((8 * MIB))"

log "pnet: a different key, and no key at all, fail cleanly within the timeout (in parallel)"
t0=$(date +%s)
run_js pbad --dial "$PNET_MA" --psk "$WORK/other.key" --ping 1 --timeout 15 &
pbad=$!
run_js pnone --dial "$PNET_MA" --ping 1 --timeout 15 &
pnone=$!
register_pid "$pbad"
register_pid "$pnone"
wait "$pbad"
rc_bad=$?
wait "$pnone"
rc_none=$?
forget_pid "$pbad"
forget_pid "$pnone"
expect "wrong-key dialer exit status" $rc_bad 1
expect "no-key dialer exit status" $rc_none 1
[ $(($(date +%s) - t0)) -le 20 ] || fail "failing pnet dialers took more than 20 s"
js_get "$WORK/pbad.out" error message >/dev/null || fail "no error line for the wrong key"
js_get "$WORK/pnone.out" error message >/dev/null || fail "no error line without a key"
[ "$(count_lines "$WORK/pbad.out" '"event":"ping"')" = 0 ] || fail "wrong key got a ping through"
[ "$(count_lines "$WORK/pnone.out" '"event":"ping"')" = 0 ] || fail "no key got a ping through"

log "pnet: the listener still serves the next good dialer"
kill -0 "$PNET_PID" 2>/dev/null || fail "pnet listener died"
run_js pgood2 --dial "$PNET_MA" --psk "$WORK/swarm.key" --ping 1 --timeout 15 ||
    fail "second good pnet dialer exited $?"
expect "pnet ping after bad peers" "$(js_get "$WORK/pgood2.out" ping 'all.length')" 1
expect "pnet listener connections" "$(count_lines "$PNET_OUT" '"event":"connection:open"')" 2

log "ok"
