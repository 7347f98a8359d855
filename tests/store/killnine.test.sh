#!/usr/bin/env bash
# kill -9 at any moment loses nothing acknowledged and leaves a sound file
# (issue 9, "The persistent store"). store_writer commits rows in a loop and
# prints "acked <n>" after each commit; we SIGKILL it at random moments,
# then a fresh process opens the store (recovering the WAL), runs
# PRAGMA integrity_check and finds every acked row.
#   1. ROUNDS kills of a writer on one store, 50-300 ms into each run;
#   2. EARLY kills 0-20 ms after start on fresh stores: during creation and
#      migration, which must leave a store that opens and migrates.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../interop/lib.sh"

WRITER=${DN_BUILD_DIR:-$DN_SOURCE_DIR/build}/bin/store_writer
[ -x "$WRITER" ] || fail "store_writer not built at $WRITER"
ROUNDS=${ROUNDS:-30}
EARLY=${EARLY:-8}

# sleep_ms N
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# kill_after DIR START MS: start a writer, SIGKILL it MS ms later, and set LAST
# to the last row it acked (START-1 when none).
kill_after() {
    local dir=$1 start=$2 ms=$3 pid last
    start_bg writer "$WRITER" write "$dir" "$start"
    pid=$BG_PID
    sleep_ms "$ms"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    forget_pid "$pid"
    if grep -q 'store_writer:' "$WORK/writer.err"; then
        fail "writer failed before the kill: $(cat "$WORK/writer.err")"
    fi
    last=$(grep -E '^acked [0-9]+$' "$WORK/writer.out" | tail -n 1 | cut -d' ' -f2)
    LAST=${last:-$((start - 1))}
}

check() {
    "$WRITER" check "$1" "$2" >"$WORK/check.out" 2>"$WORK/check.err" ||
        fail "after a kill, $1 with $2 acked rows: $(cat "$WORK/check.err")"
}

dir=$WORK/data
acked=0
for ((round = 1; round <= ROUNDS; round++)); do
    ms=$((50 + RANDOM % 251))
    kill_after "$dir" $((acked + 1)) "$ms"
    acked=$LAST
    check "$dir" "$acked"
done
[ "$acked" -gt 0 ] || fail "no row was ever acked in $ROUNDS rounds"
log "$ROUNDS kills during writes: all $acked acked rows present, integrity_check ok ($(cat "$WORK/check.out"))"

before_open=0
for ((i = 1; i <= EARLY; i++)); do
    d=$WORK/early$i
    kill_after "$d" 1 $((RANDOM % 21))
    n=$LAST
    grep -q '^opened$' "$WORK/writer.out" || before_open=$((before_open + 1))
    check "$d" "$n"
    # It opens (creating or finishing the migration) and takes writes again.
    kill_after "$d" $((n + 1)) 150
    n2=$LAST
    check "$d" "$n2"
    [ "$n2" -gt "$n" ] || fail "early$i: no row acked after reopening"
done
log "$EARLY early kills ($before_open before open had returned): each store opened, migrated and took writes"

for f in "$dir"/dmsnet.db "$dir"/dmsnet.db-wal "$dir"/dmsnet.db-shm; do
    [ -e "$f" ] || continue
    m=$(stat -c %a "$f")
    [ "$m" = 600 ] || fail "$f has mode $m, not 600"
done
echo PASS
