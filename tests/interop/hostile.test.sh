#!/usr/bin/env bash
# Hostile peers against dmsnet daemons (tests/tools/hostile_peer.c).
#
# "basic" and "pnet-basic": junk bytes, a truncated and a forged Noise handshake, an oversized
# yamux frame, a stream flood, a peer that stops reading, and junk against a private network,
# all against one daemon. For each: the daemon stays alive, a good client can still ping it,
# the daemon logs why it dropped the bad connection, and its memory stays bounded.
#
# Then the attacks of issue 8 ("Hostile peers, measured against a default daemon on
# loopback"), each against a fresh default daemon, from 127.0.0.2 (the good peer is on
# 127.0.0.1), each held to the issue's goals:
#   - resident memory stays under 128 MiB (VmHWM of the daemon);
#   - a good peer can still connect and ping within 1 s throughout: a fresh `dmsnet ping -c 1`
#     every 0.2 s from before the attack starts until it ends, each answered within 1 s
#     (wall time of the whole connect + handshake + ping);
#   - the attack's log lines are rate-limited: the daemon writes at most LOG_BURST + LOG_RATE
#     per second of attack lines (the good peer's own lines are not counted);
#   - after the attack ends memory returns to within 2x of idle (VmRSS, within SETTLE_S);
#   and for no-read-1000 (hostile_peer no-read --streams 1000), the daemon grows by less than
#   32 MiB for that one connection and a good peer's pings on one connection are answered
#   within 100 ms throughout.
# Counts are scaled to keep the whole suite within ~3-4 minutes on 2 cores; each SCALE note
# below says by how much.
#
# HOSTILE_ONLY=name[,name...] runs only those parts: basic pnet-basic slots slots-reconnect
# pnet-wrong mss-stall id-push rsa-push rsa-noise peerstore burst no-read-1000 agent.
# HOSTILE_SCALE=bench uses the issue's full counts where the test scales them down.
# HOSTILE_TABLE=FILE also writes the results table there.
# Every attack runs even when an earlier one missed its goals; the suite fails at the end
# listing every missed goal.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_dmsnet
HOSTILE=${HOSTILE_PEER:-$(dirname "$DMSNET")/hostile_peer}
[ -x "$HOSTILE" ] || fail "hostile_peer not found at $HOSTILE (set HOSTILE_PEER)"
export DMSNET_LOG=info # the "closing connection" lines are info
RSS_LIMIT_KB=$((128 * 1024)) # the goal for every attack, existing ones included
GOAL_RSS_KB=$((128 * 1024)) # peak above idle
GOAL_PING_MS=1000
GOAL_AFTER_FACTOR=2
LOG_BURST=50 # lines an attack may cause at once ...
LOG_RATE=10  # ... and per second after that
SETTLE_S=5   # how long memory may take to come back after an attack
GOAL_NOREAD_KB=$((32 * 1024))
GOAL_NOREAD_RTT_MS=100
# Under AddressSanitizer (make asan) the run is for memory safety under attack:
# ASan's shadow memory, redzones and quarantine add to every figure and its
# checks slow everything, so the numeric goals are scaled (and said so);
# the quarantine is kept small so freed memory still counts as freed.
case "${DN_CC_FLAGS:-}" in
*sanitize=address*)
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16:malloc_context_size=5"
    RSS_LIMIT_KB=$((RSS_LIMIT_KB * 3)) GOAL_RSS_KB=$((GOAL_RSS_KB * 3))
    GOAL_NOREAD_KB=$((GOAL_NOREAD_KB * 3)) GOAL_PING_MS=$((GOAL_PING_MS * 3))
    GOAL_NOREAD_RTT_MS=$((GOAL_NOREAD_RTT_MS * 3)) GOAL_AFTER_FACTOR=6
    echo "# sanitizer build: memory and time goals x3 (memory-after x6), ASan quarantine 16 MiB"
    ;;
esac
ATTACK_SRC=127.0.0.2
if [ "${HOSTILE_SCALE:-test}" = bench ]; then
    RECONNECT_S=30 MSS_CONNS=1500 PEERS=10000
else
    RECONNECT_S=12 MSS_CONNS=150 PEERS=2000
fi

# only NAME: whether HOSTILE_ONLY selects this part (everything when unset).
only() { [ -z "${HOSTILE_ONLY:-}" ] || [[ ",$HOSTILE_ONLY," == *",$1,"* ]]; }

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

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# run_bounded SECONDS OUT ERR CMD...: run CMD (killed after SECONDS) and return its status. It
# runs in the background while we wait, registered, so a signal to the suite is handled at
# once and the cleanup ends it too.
run_bounded() {
    local secs=$1 out=$2 err=$3 pid rc
    shift 3
    timeout -k 5 "$secs" "$@" >"$out" 2>"$err" &
    pid=$!
    register_pid "$pid"
    wait "$pid"
    rc=$?
    forget_pid "$pid"
    return $rc
}

# good_ping NAME MA [ARGS]: a well-behaved client must still get 2 replies, connecting and
# pinging within GOAL_PING_MS.
good_ping() {
    local name=$1 ma=$2 t
    shift 2
    t=$(now_ms)
    "$DMSNET" ping "$ma" -c 2 -i 0 --timeout 5 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
        fail "$name: ping from a good client failed"
    t=$(($(now_ms) - t))
    [ "$(count_lines "$WORK/$name.out" 'time=[0-9.]+ ms')" = 2 ] ||
        fail "$name: expected 2 ping replies"
    [ "$t" -le "$GOAL_PING_MS" ] ||
        fail "$name: a good client needed $t ms to connect and ping (goal $GOAL_PING_MS ms)"
    [ "$t" -le "$GOOD_WORST" ] || GOOD_WORST=$t
}
GOOD_WORST=0 # slowest good_ping so far, ms

# run_hostile NAME MODE MA [ARGS]: run the bad peer in the foreground (bounded) and show its line.
run_hostile() {
    local name=$1 mode=$2 ma=$3 rc
    shift 3
    split_ma "$ma"
    run_bounded 120 "$WORK/$name.out" "$WORK/$name.err" \
        "$HOSTILE" "$mode" "$IP" "$PORT" "${ma##*/p2p/}" "$@"
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

suite_basic() {
    start_dmsnet_daemon d --listen /ip4/127.0.0.1/tcp/0 --data-dir "$WORK/d" --handshake-timeout 2 \
        --enable-perf
    D_MA=$DMSNET_MA D_ID=$DMSNET_PEER_ID D_PID=$DMSNET_PID D_LOG=$DMSNET_LOG

    log "good client before anything"
    good_ping ping0 "$D_MA"
    sleep 0.3
    B_IDLE=$(rss_kb "$D_PID")
    B_T0=$(now_ms)
    GOOD_WORST=0

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
    # The goals of issue 8 for the existing cases too: memory comes back (judged with the
    # attacks below, so that they still run), and the log holds no flood.
    local after i secs nlines
    secs=$((($(now_ms) - B_T0 + 999) / 1000))
    for ((i = 0; i <= SETTLE_S * 4; i++)); do
        after=$(rss_kb "$D_PID")
        [ "${after:-0}" -le $((GOAL_AFTER_FACTOR * B_IDLE)) ] && break
        sleep 0.25
    done
    nlines=$(wc -l <"$D_LOG")
    A_NAME=basic A_FAILS=()
    [ "${after:-0}" -le $((GOAL_AFTER_FACTOR * B_IDLE)) ] ||
        miss "RSS $after kB ${SETTLE_S} s after the hostile peers, goal within ${GOAL_AFTER_FACTOR}x of idle $B_IDLE kB"
    [ "$nlines" -le $((LOG_BURST + LOG_RATE * secs)) ] ||
        miss "$nlines log lines in $secs s, goal at most $LOG_BURST + $LOG_RATE/s"
    log "  idle $B_IDLE kB, peak $hwm kB, after $after kB; good pings worst $GOOD_WORST ms; $nlines log lines in $secs s"
    TABLE+=("$(table_row basic "$B_IDLE" "$hwm" "$after" "$GOOD_WORST" 0 "$nlines" "$secs")")
    stop_pid "$D_PID" || fail "the daemon did not exit 0 on SIGTERM after the hostile peers"

}

suite_pnet_basic() {
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
}

# ---- the attacks of issue 8, each against a fresh default daemon ------------------------------

# The good peer's identities: known ids, so its own log lines are not counted as the attack's.
GOOD_KEY=$WORK/good.key
GOOD_KEY2=$WORK/good2.key
GOOD_ID=$("$DMSNET" keygen --out "$GOOD_KEY") || fail "keygen failed"
GOOD_ID2=$("$DMSNET" keygen --out "$GOOD_KEY2") || fail "keygen failed"
MISSED=()  # every goal missed, "attack: what"
TABLE=()   # one row per attack
A_KEY=""   # swarm key of the next attack's daemon, if any

# attack_begin NAME [daemon args]: start a fresh default daemon (loopback, port 0, its own data
# dir; with A_KEY as swarm key when set), ping it once, note its idle RSS and where its log is,
# and start the good peer's probe. Sets A_NAME A_MA A_ID A_PID A_LOG IP PORT.
attack_begin() {
    A_NAME=$1
    shift
    local extra=()
    A_PING=()
    if [ -n "$A_KEY" ]; then
        extra=(--swarm-key "$A_KEY")
        A_PING=(--swarm-key "$A_KEY")
    fi
    log "$A_NAME"
    start_dmsnet_daemon "$A_NAME" --listen /ip4/127.0.0.1/tcp/0 --data-dir "$WORK/$A_NAME" \
        "${extra[@]}" "$@"
    A_MA=$DMSNET_MA A_ID=$DMSNET_PEER_ID A_PID=$DMSNET_PID A_LOG=$DMSNET_LOG
    split_ma "$A_MA"
    good_ping "$A_NAME-warmup" "$A_MA" "${A_PING[@]}" # a daemon that works before the attack
    sleep 0.3
    A_IDLE_KB=$(rss_kb "$A_PID")
    A_LINE0=$(wc -l <"$A_LOG")
    A_T0=$(now_ms)
    A_FAILS=()
    A_TOOL_LINE=""
    probe_start
}

# table_row NAME IDLE_KB PEAK_KB AFTER_KB PING_WORST_MS PING_FAILS LOG_LINES SECS (A_FAILS: the
# goals missed)
table_row() {
    local verdict=PASS
    [ ${#A_FAILS[@]} = 0 ] || verdict=FAIL
    printf '%-16s %9s %9s %9s %7s/%-3s %7s %7s  %s' "$1" "$(($2 / 1024))" "$(($3 / 1024))" \
        "$(($4 / 1024))" "$5" "$6" "$7" "$8" "$verdict"
}

# miss WHAT: the current attack missed a goal (recorded; the suite fails at the end).
miss() {
    A_FAILS+=("$1")
    MISSED+=("$A_NAME: $1")
    echo "# MISSED $A_NAME: $1"
}

# The good peer: a fresh connection and one ping every 0.2 s; one line "<wall ms> <exit code>"
# per try in $WORK/NAME.probe. Each try is bounded (--timeout 3, and timeout(1)).
probe_start() {
    A_PROBE=$WORK/$A_NAME.probe
    : >"$A_PROBE"
    (
        c=""
        trap '[ -n "$c" ] && kill "$c" 2>/dev/null; exit 0' TERM
        for ((i = 0; i < 3000; i++)); do
            [ -e "$A_PROBE.stop" ] && break
            t=$(now_ms)
            timeout -k 1 5 "$DMSNET" ping "$A_MA" -c 1 --timeout 3 --identity "$GOOD_KEY" \
                "${A_PING[@]}" >/dev/null 2>&1 &
            c=$!
            wait "$c"
            rc=$?
            c=""
            echo "$(($(now_ms) - t)) $rc" >>"$A_PROBE"
            sleep 0.2
        done
    ) &
    A_PROBE_PID=$!
    register_pid "$A_PROBE_PID"
}

probe_stop() {
    local i
    # A short attack still gets three tries of the good peer (they start before it ends).
    for ((i = 0; i < 100; i++)); do
        [ "$(wc -l <"$A_PROBE")" -ge 3 ] && break
        sleep 0.1
    done
    touch "$A_PROBE.stop"
    wait "$A_PROBE_PID" 2>/dev/null
    forget_pid "$A_PROBE_PID"
}

# run_attack MODE [ARGS]: run hostile_peer MODE against the current daemon in the foreground
# (bounded), from ATTACK_SRC.
run_attack() {
    local mode=$1 rc
    shift
    run_bounded 150 "$WORK/$A_NAME.tool.out" "$WORK/$A_NAME.tool.err" \
        "$HOSTILE" "$mode" "$IP" "$PORT" "$A_ID" --src "$ATTACK_SRC" "$@"
    rc=$?
    A_TOOL_LINE=$(head -n1 "$WORK/$A_NAME.tool.out")
    log "  $A_TOOL_LINE"
    [ $rc = 0 ] || miss "hostile_peer $mode could not misbehave (rc $rc): $(tail -n1 "$WORK/$A_NAME.tool.err")"
}

# tool_field KEY: KEY=value from the attack tool's second line.
tool_field() { sed -n "s/.*\\b$1=\\([0-9.]*\\).*/\\1/p" "$WORK/$A_NAME.tool.out" | head -n1; }

# attack_end: stop the probe, wait up to SETTLE_S for memory to come back, judge the goals,
# stop the daemon and add a row to the table.
attack_end() {
    probe_stop
    local peak after="" n_probe fails worst i lines secs
    secs=$((($(now_ms) - A_T0 + 999) / 1000)) # the attack's duration, for its log budget
    if ! kill -0 "$A_PID" 2>/dev/null; then
        miss "the daemon died"
    else
        for ((i = 0; i <= SETTLE_S * 4; i++)); do
            after=$(rss_kb "$A_PID")
            [ "${after:-0}" -le $((GOAL_AFTER_FACTOR * A_IDLE_KB)) ] && break
            sleep 0.25
        done
    fi
    # The peak after the settling too: a node may still be working through what the attack
    # left in its sockets.
    peak=$(awk '/^VmHWM:/ { print $2 }' "/proc/$A_PID/status" 2>/dev/null)
    # Lines of the attack: since it began, not the good peer's (by id, short id or address).
    lines=$(tail -n +"$((A_LINE0 + 1))" "$A_LOG" |
        grep -c -v -e "$GOOD_ID" -e "${GOOD_ID: -6}" -e "$GOOD_ID2" -e "${GOOD_ID2: -6}" \
            -e '/ip4/127\.0\.0\.1/')
    n_probe=$(wc -l <"$A_PROBE")
    fails=$(awk '$2 != 0' "$A_PROBE" | wc -l)
    worst=$(awk 'BEGIN { w = 0 } $1 > w { w = $1 } END { print w }' "$A_PROBE")

    # The goal bounds what the attack adds (the node's budgets are what bound it), not
    # the idle footprint, which grows with every service the node runs.
    [ $((${peak:-0} - A_IDLE_KB)) -lt "$GOAL_RSS_KB" ] ||
        miss "peak RSS ${peak} kB, ${A_IDLE_KB} kB idle: the attack added more than the goal, $GOAL_RSS_KB kB"
    [ "$n_probe" -ge 3 ] || miss "only $n_probe good pings were tried"
    [ "$fails" = 0 ] || miss "$fails of $n_probe good pings failed"
    [ "$worst" -le "$GOAL_PING_MS" ] ||
        miss "a good peer needed $worst ms to connect and ping, goal $GOAL_PING_MS ms"
    [ "$lines" -le $((LOG_BURST + LOG_RATE * secs)) ] ||
        miss "$lines log lines in $secs s, goal at most $LOG_BURST + $LOG_RATE/s"
    if [ -n "$after" ]; then
        [ "$after" -le $((GOAL_AFTER_FACTOR * A_IDLE_KB)) ] ||
            miss "RSS $after kB ${SETTLE_S} s after the attack, goal within ${GOAL_AFTER_FACTOR}x of idle $A_IDLE_KB kB"
    fi
    if kill -0 "$A_PID" 2>/dev/null; then
        stop_pid "$A_PID" || miss "the daemon did not exit 0 on SIGTERM"
    fi
    TABLE+=("$(table_row "$A_NAME" "$A_IDLE_KB" "${peak:-0}" "${after:-0}" "$worst" "$fails" \
        "$lines" "$secs")")
    log "  idle $A_IDLE_KB kB, peak $peak kB, after ${after:-?} kB; good pings: $n_probe, $fails failed, worst $worst ms; $lines log lines in $secs s: ${TABLE[-1]##* }"
}

# SCALE: the issue's 5,000 connections; held 6 s (the issue held them for the 10 s timeout).
attack_slots() {
    attack_begin slots
    run_attack slots --conns 5000 --hold 6
    attack_end
}

# SCALE: one reconnecting attacker for 12 s (the issue: 30 s), past the 10 s handshake timeout.
attack_slots_reconnect() {
    attack_begin slots-reconnect
    run_attack slots-reconnect --conns 5000 --duration "$RECONNECT_S"
    attack_end
}

# Wrong-key pnet peers: 5,000 connections sending the nonce and a first flight under another
# key, reconnecting for 8 s when the node drops them.
attack_pnet_wrong() {
    A_KEY=$WORK/wrong-test.key
    "$DMSNET" swarm-key new --out "$A_KEY" >/dev/null || fail "swarm-key new failed"
    attack_begin pnet-wrong
    run_attack pnet-wrong --conns 5000 --duration 8
    attack_end
    A_KEY=""
}

# SCALE: 150 connections of 1,024 streams each (the issue: 1,500), held 6 s.
attack_mss_stall() {
    attack_begin mss-stall
    run_attack mss-stall --conns "$MSS_CONNS" --streams 1024 --hold 6
    attack_end
}

# As in the issue: 20 connections x 1,024 push streams x 64 KiB without FIN, held 4 s.
attack_id_push() {
    attack_begin id-push
    run_attack id-push --conns 20 --streams 1024 --size 65536 --hold 4
    attack_end
}

# As in the issue: identify pushes of 52 RSA-3072 records with 3071-bit exponents, 3 per second
# (about 190 KB/s) for 10 s.
attack_rsa_push() {
    attack_begin rsa-push
    run_attack rsa-push --records 52 --rate 3 --duration 10
    attack_end
}

# The same key in the Noise handshake: rounds of 52 handshakes whose message 3 claims it, for 8 s.
attack_rsa_noise() {
    attack_begin rsa-noise
    run_attack rsa-noise --conns 52 --duration 8
    attack_end
}

# SCALE: 2,000 peers (the issue and the bench size: 10,000) with fresh identities, from 250
# addresses, each answering identify with 32 addresses and 128 protocol names of 255 bytes,
# then leaving; memory is judged after.
attack_peerstore() {
    attack_begin peerstore
    run_attack peerstore --peers "$PEERS" --addrs 32 --protos 128 --src-spread 250
    local applied
    applied=$(tool_field applied)
    [ "${applied:-0}" -ge $((PEERS / 2)) ] ||
        miss "only ${applied:-0} of $PEERS identify messages were taken: the test did not load the node"
    attack_end
}

# As in the issue: 500 connections, each getting a 1 MiB burst (the echo of 1 MiB of ping
# bytes), then idling 4 s with the connections open.
attack_burst() {
    attack_begin burst
    run_attack burst --conns 500 --size 1048576 --hold 4
    attack_end
}

# hostile_peer no-read --streams 1000 against a default daemon serving perf: under 32 MiB for
# that one connection, and a good peer's pings (on one connection) answered within 100 ms.
attack_no_read_1000() {
    attack_begin no-read-1000 --enable-perf
    start_bg no-read-1000.rtt "$DMSNET" ping "$A_MA" -c 30 -i 0.2 --timeout 20 \
        --identity "$GOOD_KEY2"
    local rtt_pid=$BG_PID rtt_n rtt_worst peak
    run_attack no-read --streams 1000 --hold 6
    wait "$rtt_pid"
    forget_pid "$rtt_pid"
    rtt_n=$(count_lines "$WORK/no-read-1000.rtt.out" 'time=[0-9.]+ ms')
    rtt_worst=$(sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$WORK/no-read-1000.rtt.out" |
        awk 'BEGIN { w = 0 } $1 > w { w = $1 } END { printf "%d", w + 0.5 }')
    log "  pings on one connection during the attack: $rtt_n of 30 answered, worst $rtt_worst ms"
    [ "$rtt_n" = 30 ] || miss "only $rtt_n of 30 pings on one connection were answered"
    [ "$rtt_worst" -le "$GOAL_NOREAD_RTT_MS" ] ||
        miss "a ping on an open connection took $rtt_worst ms, goal $GOAL_NOREAD_RTT_MS ms"
    peak=$(awk '/^VmHWM:/ { print $2 }' "/proc/$A_PID/status" 2>/dev/null)
    [ $((${peak:-0} - A_IDLE_KB)) -lt "$GOAL_NOREAD_KB" ] ||
        miss "the one no-read connection grew the daemon by $((${peak:-0} - A_IDLE_KB)) kB, goal under $GOAL_NOREAD_KB kB"
    local unread
    unread=$(tool_field unread)
    [ "${unread:-0}" -ge 65536 ] || miss "the node sent only ${unread:-?} bytes: the test did not load it"
    attack_end
}

# A forged agent version: a newline and a fake log line after it. Peer strings must be printed
# escaped, so no line of the daemon's log may start with the forged text.
attack_agent() {
    attack_begin agent
    run_attack identify --agent $'hostile\n00:00:00.000 warn  daemon: FORGED-LOG-LINE'
    wait_for_line "$A_LOG" 'identified .*hostile' 5 >/dev/null ||
        miss "the daemon did not log the peer's identify (agent version)"
    [ "$(count_lines "$A_LOG" '^00:00:00\.000 warn  daemon: FORGED-LOG-LINE')" = 0 ] ||
        miss "a peer's agent version forged a log line: $(grep -m1 -B1 'FORGED-LOG-LINE' "$A_LOG" | tr '\n' '|')"
    attack_end
}

T_SUITE=$(now_ms)
if only basic; then
    log "== basic: hostile peers against one daemon (--handshake-timeout 2)"
    suite_basic
fi
if only pnet-basic; then
    log "== pnet-basic: junk against a private network"
    suite_pnet_basic
fi
ran=0
for a in slots slots-reconnect pnet-wrong mss-stall id-push rsa-push rsa-noise peerstore burst \
    no-read-1000 agent; do
    only "$a" || continue
    [ $ran = 1 ] || log "== attacks of issue 8, each against a fresh default daemon"
    ran=1
    "attack_${a//-/_}"
done

if [ ${#TABLE[@]} -gt 0 ]; then
    {
        echo "# $(printf '%-16s %9s %9s %9s %11s %7s %7s  %s' attack 'idle MiB' 'peak MiB' \
            'after MiB' 'ping worst ms/fails' 'log' 'secs' 'goals')"
        for row in "${TABLE[@]}"; do echo "# $row"; done
    } | tee "${HOSTILE_TABLE:-/dev/null}"
fi
log "hostile suite took $((($(now_ms) - T_SUITE) / 1000)) s"
if [ ${#MISSED[@]} -gt 0 ]; then
    for m in "${MISSED[@]}"; do echo "MISSED: $m" >&2; done
    fail "${#MISSED[@]} goal(s) missed"
fi
echo "PASS"
