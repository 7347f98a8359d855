#!/usr/bin/env bash
# The daemon under kill -9 (issue 9, "The persistent store"): a kill at any
# moment loses nothing that was acknowledged to the user and leaves a
# database that passes PRAGMA integrity_check. killnine.test.sh does this for
# the store library; this test does it for the whole daemon and its API.
#
#   1. ROUNDS rounds on one data dir. Each starts `dmsnet daemon`, checks
#      with GET /v0/config that every setting the earlier rounds had
#      acknowledged is there (api_writer check: the last acknowledged value
#      of each key, or the one request whose answer never came), then has
#      api_writer PUT /v0/config over and over (each "ack" line written only
#      after the 200), and SIGKILLs the daemon 0-250 ms after the round's
#      first acknowledgement. A copy of the files as the kill left them
#      (dmsnet.db and its WAL) must pass `sqlite3 PRAGMA integrity_check`;
#      the daemon of the next round recovers the originals itself.
#   2. At the end a clean stop (SIGTERM: exit 0) and integrity_check again.
#   3. Peer writes: two daemons bootstrap from a third, all identify each
#      other; one leaves, then the others stop cleanly; each store holds the
#      peers it identified in `peers` (public key, agent) and `peer_addrs`,
#      the one that left before the stop too.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../interop/lib.sh"

WRITER=${DN_BUILD_DIR:-$DN_SOURCE_DIR/build}/bin/api_writer
[ -x "$WRITER" ] || fail "api_writer not built at $WRITER"
require_dmsnet
command -v sqlite3 >/dev/null || fail "the sqlite3 CLI is missing (scripts/setup.sh --test installs it)"
ROUNDS=${ROUNDS:-20} # at most 49 (api_writer)
WRITES=${WRITES:-20000} # per round: far more than fit before the kill (api_writer's maximum)

sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

dir=$WORK/node
mkdir -p "$dir"
sock=$dir/api.sock
acklog=$WORK/acks.log
: >"$acklog"

# start_node NAME [args]: a daemon on $dir, up with its API; sets NODE_PID.
start_node() {
    local name=$1
    shift
    start_dmsnet_daemon "$name" --data-dir "$dir" --listen /ip4/127.0.0.1/tcp/0 "$@"
    NODE_PID=$DMSNET_PID
    wait_for_line "$DMSNET_LOG" '^api listening on unix:' 10 "$NODE_PID" >/dev/null ||
        fail "$name: no 'api listening' line"
    [ -S "$sock" ] || fail "$name: says its API listens, but $sock is no socket"
}

# integrity DB: PRAGMA integrity_check must answer exactly "ok".
integrity() {
    local out
    out=$(sqlite3 "$1" 'PRAGMA integrity_check;' 2>&1) || fail "sqlite3 $1: $out"
    [ "$out" = ok ] || fail "integrity_check of $1 after $2: $out"
}

# As the kill left them: a copy, so that sqlite3 recovers the copy's WAL and
# the next daemon still finds the originals untouched.
snapshot_check() {
    local snap=$WORK/snap
    rm -rf "$snap"
    mkdir -p "$snap"
    cp "$dir/dmsnet.db" "$snap/" || fail "round $1: no dmsnet.db after the kill"
    [ -e "$dir/dmsnet.db-wal" ] && cp "$dir/dmsnet.db-wal" "$snap/"
    integrity "$snap/dmsnet.db" "the kill of round $1"
}

check_settings() {
    "$WRITER" check "$sock" "$acklog" >"$WORK/check.out" 2>"$WORK/check.err" ||
        fail "$1: $(cat "$WORK/check.err")"
}

killed_in_flight=0
for ((round = 1; round <= ROUNDS; round++)); do
    start_node "round$round"
    [ "$round" -gt 1 ] && check_settings "after the kill of round $((round - 1))"
    before=$(count_lines "$acklog" '^ack ')
    start_bg "writer$round" "$WRITER" write "$sock" "$round" "$WRITES"
    wpid=$BG_PID
    # Kill during the writes: after the first acknowledgement of this round,
    # at a random point of the next 250 ms (about 0.5-1 ms per write here).
    end=$(($(date +%s) + 10))
    while [ "$(count_lines "$WORK/writer$round.out" '^ack ')" -eq 0 ]; do
        kill -0 "$wpid" 2>/dev/null || fail "round $round: the writer ended before any ack"
        [ "$(date +%s)" -lt "$end" ] || fail "round $round: no ack within 10 s"
        sleep 0.01
    done
    sleep_ms $((RANDOM % 251))
    kill -KILL "$NODE_PID"
    wait "$NODE_PID" 2>/dev/null
    forget_pid "$NODE_PID"
    # The writer notices (connection refused or cut) and ends.
    for ((i = 0; i < 100; i++)); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$wpid" 2>/dev/null && fail "round $round: the writer still runs after the kill"
    wait "$wpid"
    wrc=$?
    forget_pid "$wpid"
    [ "$wrc" = 0 ] || fail "round $round: the writer failed: $(cat "$WORK/writer$round.err")"
    grep -q '^done$' "$WORK/writer$round.out" &&
        fail "round $round: all $WRITES writes were done before the kill (raise WRITES)"
    # Every line, in order: the check reads acks and the one unanswered send.
    grep -E '^(send|ack) ' "$WORK/writer$round.out" >>"$acklog"
    [ "$(tail -n 1 "$acklog" | cut -d' ' -f1)" = send ] && killed_in_flight=$((killed_in_flight + 1))
    snapshot_check "$round"
done
acked=$(count_lines "$acklog" '^ack ')
start_node final
check_settings "after the kill of round $ROUNDS"
stop_pid "$NODE_PID"
rc=$?
[ "$rc" = 0 ] || fail "the daemon's clean stop exited $rc"
integrity "$dir/dmsnet.db" "a clean stop"
log "$ROUNDS kill -9 rounds during PUT /v0/config: all $acked acknowledged settings there after each restart ($killed_in_flight kills with a request unanswered), integrity_check ok every time"

# ---- peers: what the daemon learnt of a peer survives a clean stop --------
# A is the bootstrap peer of B and C. C leaves first (A runs on for a tick
# of its batched peer writes), then A stops while B is still connected, then
# B. A's store must hold both B (connected at the stop) and C (left before
# it); B's and C's must hold A.
dirA=$WORK/peerA dirB=$WORK/peerB dirC=$WORK/peerC
start_dmsnet_daemon peerA --data-dir "$dirA" --listen /ip4/127.0.0.1/tcp/0
pidA=$DMSNET_PID maA=$DMSNET_MA idA=$DMSNET_PEER_ID
start_dmsnet_daemon peerB --data-dir "$dirB" --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$maA"
pidB=$DMSNET_PID idB=$DMSNET_PEER_ID
start_dmsnet_daemon peerC --data-dir "$dirC" --listen /ip4/127.0.0.1/tcp/0 --bootstrap "$maA"
pidC=$DMSNET_PID idC=$DMSNET_PEER_ID
# identified DIR ID: the daemon of DIR lists peer ID with its agent, so
# identify has run (a peer's store row is written from identification).
identified() {
    "$DMSNET" peers --json --data-dir "$1" 2>/dev/null | tr -d ' \n' |
        grep -q "\"peer_id\":\"$2\"[^}]*\"agent\":\"dmsnet/"
}
ok=0
for ((i = 0; i < 100; i++)); do
    identified "$dirA" "$idB" && identified "$dirA" "$idC" && identified "$dirB" "$idA" &&
        identified "$dirC" "$idA" && ok=1 && break
    sleep 0.05
done
[ $ok = 1 ] || fail "A, B and C did not list each other as identified within 5 s"
stop_pid "$pidC" || fail "C's clean stop failed"
sleep 1.5 # more than the node's 1 s tick, which writes the batched peers
stop_pid "$pidA" || fail "A's clean stop failed"
stop_pid "$pidB" || fail "B's clean stop failed"

# peer_row DIR ID: "<has key>|<agent>|<addrs>" from DIR's store.
peer_row() {
    sqlite3 "$1/dmsnet.db" "SELECT (public_key IS NOT NULL AND length(public_key) > 0), agent,
        (SELECT count(*) FROM peer_addrs a WHERE a.peer_id = p.peer_id)
        FROM peers p WHERE p.peer_id = '$2';"
}
for d in "$dirA" "$dirB" "$dirC"; do integrity "$d/dmsnet.db" "a clean stop"; done
for pair in "A $dirA $idB B(connected-at-stop)" "A $dirA $idC C(left-before-stop)" \
    "B $dirB $idA A" "C $dirC $idA A"; do
    read -r me d other oname <<<"$pair"
    row=$(peer_row "$d" "$other") || fail "sqlite3 on $me's store failed"
    [ -n "$row" ] || fail "$me's store has no row for $oname ($other) after a clean stop"
    IFS='|' read -r haskey agent naddrs <<<"$row"
    [ "$haskey" = 1 ] || fail "$me's store has no public key for $oname: $row"
    case $agent in dmsnet/*) ;; *) fail "$me's store has agent '$agent' for $oname, not dmsnet/..." ;; esac
    [ "$naddrs" -ge 1 ] 2>/dev/null || fail "$me's store has no address of $oname: $row"
done
log "peers: each store holds its peers (public key, agent, addresses) after a clean stop, one that left before it too"
echo PASS
