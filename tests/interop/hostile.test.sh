#!/usr/bin/env bash
# Hostile peers against one dmsnet daemon (tests/tools/hostile_peer.c): junk bytes, a truncated
# and a forged Noise handshake, an oversized yamux frame, a stream flood, a peer that stops
# reading, and junk against a private network. For each: the daemon stays alive, a good client
# can still ping it, the daemon logs why it dropped the bad connection, and its memory stays
# bounded.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_dmsnet
HOSTILE=${HOSTILE_PEER:-$(dirname "$DMSNET")/hostile_peer}
[ -x "$HOSTILE" ] || fail "hostile_peer not found at $HOSTILE (set HOSTILE_PEER)"
export DMSNET_LOG=info # the "closing connection" lines are info
RSS_LIMIT_KB=$((200 * 1024))

start_dmsnet_daemon d --listen /ip4/127.0.0.1/tcp/0 --data-dir "$WORK/d" --handshake-timeout 2 \
    --enable-perf
D_MA=$DMSNET_MA D_ID=$DMSNET_PEER_ID D_PID=$DMSNET_PID D_LOG=$DMSNET_LOG

# split_ma MA: set IP and PORT from /ip4/<ip>/tcp/<port>/p2p/<id>
split_ma() {
    IP=$(printf '%s\n' "$1" | cut -d/ -f3)
    PORT=$(printf '%s\n' "$1" | cut -d/ -f5)
    { [ -n "$IP" ] && [ -n "$PORT" ]; } || fail "cannot parse address $1"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

check_rss() { # check_rss PID WHAT
    local kb
    kb=$(rss_kb "$1")
    [ -n "$kb" ] || fail "$2: no VmRSS for pid $1 (daemon gone?)"
    [ "$kb" -lt "$RSS_LIMIT_KB" ] || fail "$2: daemon RSS $kb kB exceeds $RSS_LIMIT_KB kB"
    echo "$kb"
}

# good_ping NAME MA [ARGS]: a well-behaved client must still get 2 replies.
good_ping() {
    local name=$1 ma=$2
    shift 2
    "$DMSNET" ping "$ma" -c 2 -i 0 --timeout 5 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
        fail "$name: ping from a good client failed"
    [ "$(count_lines "$WORK/$name.out" 'time=[0-9.]+ ms')" = 2 ] ||
        fail "$name: expected 2 ping replies"
}

# run_hostile NAME MODE MA [ARGS]: run the bad peer in the foreground (bounded) and show its line.
run_hostile() {
    local name=$1 mode=$2 ma=$3 rc
    shift 3
    split_ma "$ma"
    timeout -k 5 120 "$HOSTILE" "$mode" "$IP" "$PORT" "${ma##*/p2p/}" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err"
    rc=$?
    [ $rc = 0 ] ||
        fail "$name: hostile_peer $mode could not misbehave (rc $rc): $(cat "$WORK/$name.err")"
    log "$name: $(head -n1 "$WORK/$name.out")"
}

# wait_reason LOG FROM_LINE REGEX WHAT: a "closing connection from <peer>: <reason>" line
# matching REGEX must appear after line FROM_LINE of LOG within 5 s; prints it.
wait_reason() {
    local logf=$1 from=$2 re=$3 what=$4 i line
    for ((i = 0; i < 100; i++)); do
        if line=$(tail -n +"$((from + 1))" "$logf" |
            grep -E -m1 -- "closing connection from [^ ]+: ($re)"); then
            log "  daemon: ${line#* info  }"
            return 0
        fi
        sleep 0.05
    done
    fail "$what: no 'closing connection ... : $re' line in the daemon log"
}

# closed_within NAME MIN MAX: the bad peer's line says the node closed it after MIN..MAX s.
closed_within() {
    local name=$1 min=$2 max=$3 t
    t=$(sed -n 's/.*closed by peer ([^)]*) after \([0-9.]*\) s.*/\1/p' "$WORK/$name.out" | head -n1)
    [ -n "$t" ] ||
        fail "$name: the node did not close the connection: $(head -n1 "$WORK/$name.out")"
    awk -v t="$t" -v lo="$min" -v hi="$max" 'BEGIN { exit !(t >= lo && t <= hi) }' ||
        fail "$name: closed after $t s, expected $min..$max s"
}

alive() { kill -0 "$D_PID" 2>/dev/null || fail "the daemon died after $1"; }

lines() { wc -l <"$D_LOG"; }

log "good client before anything"
good_ping ping0 "$D_MA"

log "junk: 64 KiB of random bytes instead of multistream-select"
n=$(lines)
run_hostile junk junk "$D_MA"
closed_within junk 0 1.5 # at once, not by the 2 s handshake timeout
wait_reason "$D_LOG" "$n" 'size exceeds limit|protocol violation' junk
alive junk
good_ping ping-junk "$D_MA"

log "truncated: half of Noise message 1, then silence"
n=$(lines)
run_hostile truncated truncated "$D_MA"
closed_within truncated 1.5 6 # --handshake-timeout 2
wait_reason "$D_LOG" "$n" 'timed out' truncated
alive truncated
good_ping ping-truncated "$D_MA"

log "forged: Noise message 3 signed over another static key"
n=$(lines)
run_hostile forged forged "$D_MA"
closed_within forged 0 1.5
wait_reason "$D_LOG" "$n" 'signature verification failed' forged
grep -q "connected from" <(tail -n +"$((n + 1))" "$D_LOG") &&
    fail "forged: the daemon reported the forged peer as connected"
alive forged
good_ping ping-forged "$D_MA"

log "oversized: a 1 MiB yamux Data|SYN frame against a 256 KiB window"
n=$(lines)
run_hostile oversized oversized "$D_MA"
closed_within oversized 0 1.5
wait_reason "$D_LOG" "$n" 'protocol violation' oversized
alive oversized
good_ping ping-oversized "$D_MA"

log "stream-flood: 20000 SYNs without waiting for ACKs"
n=$(lines)
run_hostile flood stream-flood "$D_MA" --streams 20000 --hold 2
acks=$(sed -n 's/^acks=\([0-9]*\) .*/\1/p' "$WORK/flood.out")
rsts=$(sed -n 's/.* rsts=\([0-9]*\) .*/\1/p' "$WORK/flood.out")
{ [ -n "$acks" ] && [ -n "$rsts" ]; } || fail "stream-flood: no counts from hostile_peer"
# The node accepts up to its stream limit (1024 per connection, one of them may be its own
# identify stream) and refuses the rest with RST; the connection itself stays usable.
{ [ "$acks" -ge 1 ] && [ "$acks" -le 1024 ]; } ||
    fail "stream-flood: node accepted $acks streams (limit 1024)"
[ $((acks + rsts)) -eq 20000 ] ||
    fail "stream-flood: $acks accepted + $rsts reset != 20000 SYNs: every SYN needs an answer"
grep -q ' open=1$' "$WORK/flood.out" ||
    fail "stream-flood: the node dropped a connection within its limits"
alive stream-flood
check_rss "$D_PID" stream-flood >/dev/null
good_ping ping-flood "$D_MA"

log "stream-flood without ever reading: up to 8M SYNs, 96 MB of RSTs owed"
n=$(lines)
run_hostile flood-big stream-flood "$D_MA" --streams 8000000 --hold 2
# Every refused SYN costs the node a 12-byte RST; a peer that never reads must not make it
# queue them without bound: it must drop the connection and say why.
wait_reason "$D_LOG" "$n" 'resource limit reached' flood-big
tail -n +"$((n + 1))" "$D_LOG" | grep -q 'peer is not reading' ||
    fail "flood-big: the daemon did not log that the peer is not reading"
alive flood-big
check_rss "$D_PID" flood-big >/dev/null
good_ping ping-flood-big "$D_MA"

log "no-read: a /perf/1.0.0 download of 4 GiB with 1 GiB of window, never read for 8 s"
n=$(lines)
split_ma "$D_MA"
start_bg noread "$HOSTILE" no-read "$IP" "$PORT" "$D_ID" --hold 8
NR_PID=$BG_PID
sleep 2 # let the node fill the socket and its queues
kill -0 "$NR_PID" 2>/dev/null ||
    fail "no-read: hostile_peer exited early: $(cat "$WORK/noread.err")"
max_kb=0
for i in 1 2 3; do
    kb=$(check_rss "$D_PID" "no-read (sample $i)")
    [ "$kb" -gt "$max_kb" ] && max_kb=$kb
    good_ping "ping-noread-$i" "$D_MA" # while the bad peer holds its connection
    sleep 0.5
done
kill -0 "$NR_PID" 2>/dev/null || fail "no-read: the bad peer was gone before the pings finished"
log "  daemon RSS while the peer refuses to read: max $max_kb kB"
for ((i = 0; i < 300; i++)); do
    kill -0 "$NR_PID" 2>/dev/null || break
    sleep 0.05
done
stop_pid "$NR_PID" || fail "no-read: hostile_peer failed: $(cat "$WORK/noread.err")"
log "noread: $(head -n1 "$WORK/noread.out")"
unread=$(sed -n 's/^unread=\([0-9-]*\) .*/\1/p' "$WORK/noread.out")
{ [ -n "$unread" ] && [ "$unread" -ge 65536 ]; } ||
    fail "no-read: the node sent only ${unread:-?} bytes: the test did not load it"
# When the peer finally goes away (closing with unread data resets the connection), the node
# says so.
wait_reason "$D_LOG" "$n" '.+' no-read
alive no-read
good_ping ping-noread-after "$D_MA"

log "no-read on 64 perf streams at once, 4 s"
n=$(lines)
start_bg noread64 "$HOSTILE" no-read "$IP" "$PORT" "$D_ID" --hold 4 --streams 64
NR_PID=$BG_PID
sleep 2
kill -0 "$NR_PID" 2>/dev/null ||
    fail "no-read x64: hostile_peer exited early: $(cat "$WORK/noread64.err")"
# Each stream may pin its queue (about 320 KiB for perf), not DN_STREAM_QUEUE_HIGH (4 MiB).
kb=$(check_rss "$D_PID" "no-read x64")
log "  daemon RSS while 64 streams are not read: $kb kB"
good_ping ping-noread64 "$D_MA"
for ((i = 0; i < 200; i++)); do
    kill -0 "$NR_PID" 2>/dev/null || break
    sleep 0.05
done
stop_pid "$NR_PID" || fail "no-read x64: hostile_peer failed: $(cat "$WORK/noread64.err")"
log "noread64: $(head -n1 "$WORK/noread64.out")"
wait_reason "$D_LOG" "$n" '.+' no-read-x64
alive no-read-x64

hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$D_PID/status")
log "daemon peak RSS over all cases: ${hwm:-?} kB"
{ [ -n "$hwm" ] && [ "$hwm" -lt "$RSS_LIMIT_KB" ]; } ||
    fail "daemon peak RSS ${hwm:-?} kB exceeds $RSS_LIMIT_KB kB"
stop_pid "$D_PID" || fail "the daemon did not exit 0 on SIGTERM after the hostile peers"

log "pnet: junk against a daemon with a swarm key"
"$DMSNET" swarm-key new --out "$WORK/swarm.key" >/dev/null || fail "swarm-key new failed"
start_dmsnet_daemon p --listen /ip4/127.0.0.1/tcp/0 --data-dir "$WORK/p" --handshake-timeout 2 \
    --swarm-key "$WORK/swarm.key"
P_MA=$DMSNET_MA P_PID=$DMSNET_PID P_LOG=$DMSNET_LOG
good_ping pping0 "$P_MA" --swarm-key "$WORK/swarm.key"
# Without the key: the first 24 bytes pass for a nonce, the rest decrypts to garbage.
n=$(wc -l <"$P_LOG")
run_hostile pjunk junk "$P_MA"
closed_within pjunk 0 1.5
wait_reason "$P_LOG" "$n" 'size exceeds limit|protocol violation' pnet-junk
# With the key: a proper nonce exchange, then junk under the right keystream.
n=$(wc -l <"$P_LOG")
run_hostile pjunk-key junk "$P_MA" --swarm-key "$WORK/swarm.key"
closed_within pjunk-key 0 1.5
wait_reason "$P_LOG" "$n" 'size exceeds limit|protocol violation' pnet-junk-with-key
# And a forged handshake through the right key.
n=$(wc -l <"$P_LOG")
run_hostile pforged forged "$P_MA" --swarm-key "$WORK/swarm.key"
closed_within pforged 0 1.5
wait_reason "$P_LOG" "$n" 'signature verification failed' pnet-forged
kill -0 "$P_PID" 2>/dev/null || fail "the pnet daemon died after junk"
good_ping pping1 "$P_MA" --swarm-key "$WORK/swarm.key"
stop_pid "$P_PID" || fail "the pnet daemon did not exit 0 on SIGTERM"
echo "PASS"
