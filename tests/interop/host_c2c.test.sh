#!/usr/bin/env bash
# dmsnet to dmsnet over loopback: daemon, ping, perf, pnet, identity persistence.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_dmsnet

# --- a daemon with a persistent identity, on IPv4 and IPv6 loopback
start_dmsnet_daemon a --listen /ip4/127.0.0.1/tcp/0 --listen /ip6/::1/tcp/0 \
    --data-dir "$WORK/a" --enable-perf
A_MA=$DMSNET_MA A_ID=$DMSNET_PEER_ID A_PID=$DMSNET_PID A_LOG=$DMSNET_LOG
[ "$(count_lines "$A_LOG" '^listening on /ip[46]/.*/tcp/[1-9][0-9]*/p2p/')" = 2 ] ||
    fail "daemon should print one listening line per address"
[ "$(stat -c %a "$WORK/a/identity.key")" = 600 ] || fail "identity.key is not mode 0600"
[ "$("$DMSNET" id --identity "$WORK/a/identity.key")" = "$A_ID" ] ||
    fail "dmsnet id disagrees with the daemon's peer id"

log "ping over IPv4"
"$DMSNET" ping "$A_MA" -c 3 -i 0 >"$WORK/ping4.out" 2>"$WORK/ping4.err" || fail "ping failed"
[ "$(count_lines "$WORK/ping4.out" 'time=[0-9.]+ ms')" = 3 ] || fail "expected 3 ping replies"

log "ping over IPv6"
A6_MA=$(grep -m1 -o 'listening on /ip6/[^ ]*' "$A_LOG" | sed 's/listening on //')
"$DMSNET" ping "$A6_MA" -c 2 -i 0 >"$WORK/ping6.out" 2>"$WORK/ping6.err" || fail "ping over IPv6 failed"

log "a wrong /p2p/ id is refused"
OTHER_ID=$("$DMSNET" keygen --out "$WORK/other.key")
WRONG_MA=${A_MA%/p2p/*}/p2p/$OTHER_ID
if "$DMSNET" ping "$WRONG_MA" -c 1 --timeout 5 >"$WORK/wrong.out" 2>"$WORK/wrong.err"; then
    fail "ping to a wrong peer id succeeded"
fi
grep -q "peer id mismatch" "$WORK/wrong.err" || fail "wrong peer id: unclear error: $(cat "$WORK/wrong.err")"

log "perf: 256 MiB each way"
"$DMSNET" perf "$A_MA" --upload 256M --download 256M --json >"$WORK/perf.out" 2>"$WORK/perf.err" ||
    fail "perf 256 MiB failed"
grep -q '"ok":true' "$WORK/perf.out" || fail "perf did not report ok"
log "$(cat "$WORK/perf.out")"

log "perf: 200 concurrent streams on one connection"
"$DMSNET" perf "$A_MA" --upload 64K --download 64K --streams 200 --json >"$WORK/perf200.out" \
    2>"$WORK/perf200.err" || fail "perf with 200 streams failed"
grep -q '"upload_bytes":13107200,"download_bytes":13107200' "$WORK/perf200.out" ||
    fail "200 streams: wrong byte counts: $(cat "$WORK/perf200.out")"

log "the identity persists across restarts"
stop_pid "$A_PID" || fail "daemon did not exit 0 on SIGTERM"
start_dmsnet_daemon a2 --listen /ip4/127.0.0.1/tcp/0 --data-dir "$WORK/a"
[ "$DMSNET_PEER_ID" = "$A_ID" ] || fail "restarted daemon has a new peer id"

# Stream opens are lazy (data follows the proposal at once), so a refusal
# must still come back as a refusal, not as a bare reset or a rate.
log "perf against a daemon without perf: a clear refusal"
if "$DMSNET" perf "$DMSNET_MA" --upload 1M --download 1M >"$WORK/noperf.out" 2>"$WORK/noperf.err"; then
    fail "perf against a daemon without --enable-perf succeeded"
fi
grep -q "protocol not supported by peer" "$WORK/noperf.err" ||
    fail "perf refused: unclear error: $(cat "$WORK/noperf.err")"
[ ! -s "$WORK/noperf.out" ] || fail "perf printed a rate for a refused stream: $(cat "$WORK/noperf.out")"
"$DMSNET" ping "$DMSNET_MA" -c 1 >/dev/null 2>&1 || fail "the daemon stopped answering after a refused stream"
stop_pid "$DMSNET_PID" || fail "daemon did not exit 0 on SIGTERM"

# --- a private network
"$DMSNET" swarm-key new --out "$WORK/swarm.key" >/dev/null || fail "swarm-key new failed"
"$DMSNET" swarm-key new --out "$WORK/other-swarm.key" >/dev/null || fail "swarm-key new failed"
start_dmsnet_daemon p --listen /ip4/127.0.0.1/tcp/0 --data-dir "$WORK/p" --enable-perf \
    --swarm-key "$WORK/swarm.key"
P_MA=$DMSNET_MA P_PID=$DMSNET_PID

log "pnet: the same key works"
"$DMSNET" ping "$P_MA" -c 2 -i 0 --swarm-key "$WORK/swarm.key" >"$WORK/pping.out" 2>"$WORK/pping.err" ||
    fail "ping with the right swarm key failed"
"$DMSNET" perf "$P_MA" --upload 16M --download 16M --swarm-key "$WORK/swarm.key" \
    >"$WORK/pperf.out" 2>"$WORK/pperf.err" || fail "perf over pnet failed"

log "pnet: another key, or none, fails cleanly within the timeout"
start=$(date +%s)
"$DMSNET" ping "$P_MA" -c 1 --timeout 5 --swarm-key "$WORK/other-swarm.key" \
    >"$WORK/badkey.out" 2>"$WORK/badkey.err" && fail "ping with another swarm key succeeded"
"$DMSNET" ping "$P_MA" -c 1 --timeout 5 >"$WORK/nokey.out" 2>"$WORK/nokey.err" &&
    fail "ping without a swarm key succeeded"
[ $(($(date +%s) - start)) -le 12 ] || fail "pnet failures took longer than the timeouts"
[ "$(wc -l <"$WORK/badkey.err")" -ge 1 ] || fail "no error line for a wrong swarm key"
kill -0 "$P_PID" || fail "the daemon died after bad pnet peers"

log "pnet: the daemon keeps serving good peers"
"$DMSNET" ping "$P_MA" -c 1 --swarm-key "$WORK/swarm.key" >/dev/null 2>&1 ||
    fail "ping with the right key failed after bad peers"
stop_pid "$P_PID" || fail "pnet daemon did not exit 0 on SIGTERM"
echo "PASS"
