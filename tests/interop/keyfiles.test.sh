#!/usr/bin/env bash
# Key files as the daemon and the key commands meet them on disk:
#   - a FIFO given as --identity (or --swarm-key) is refused at once with a clear error, exit 1,
#     instead of blocking the daemon in open(2);
#   - "<key>.tmp.XXXXXX" files that a writer killed before its rename left behind (each holds a
#     whole private key) are removed when the daemon starts and when a key is written; files
#     that only look similar, symlinks, other users' files and the file of a writer that is
#     still at work (it holds a flock) are left alone;
#   - a bad swarm key is refused before the identity is created: no identity.key appears;
#   - every key file we create has mode 0600, whatever the umask.
# Env: DN_SOURCE_DIR, DN_BUILD_DIR, DMSNET (set by CTest).
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_dmsnet
command -v flock >/dev/null || fail "flock(1) (util-linux) is needed"
umask 000 # so that a mode of 0600 comes from the code, not from the umask

LISTEN=(--listen /ip4/127.0.0.1/tcp/0)

# run_daemon NAME ARGS...: a daemon run that must end by itself (an error at start); prints its
# exit status. `timeout` turns a hang into status 124.
run_daemon() {
    local name=$1 rc=0
    shift
    timeout -k 2 5 "$DMSNET" daemon "${LISTEN[@]}" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
        rc=$?
    echo "$rc"
}

mode_of() { stat -c %a "$1"; }

log "a FIFO as --identity: refused within the timeout, exit 1, a clear message"
mkfifo "$WORK/fifo.key"
mkdir -m 700 "$WORK/d-fifo"
t0=$(date +%s%N)
rc=$(run_daemon fifo-id --data-dir "$WORK/d-fifo" --identity "$WORK/fifo.key")
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 124 ] && fail "the daemon hung on a FIFO identity (killed by timeout after ${ms} ms)"
[ "$rc" = 1 ] || fail "FIFO identity: exit status $rc, want 1"
grep -q "fifo.key: not a regular file" "$WORK/fifo-id.err" ||
    fail "FIFO identity: no 'not a regular file' message: $(cat "$WORK/fifo-id.err")"
[ -p "$WORK/fifo.key" ] || fail "FIFO identity: the FIFO was replaced"
log "  exit 1 after $ms ms: $(head -n1 "$WORK/fifo-id.err")"

log "a FIFO as --swarm-key: the same"
rc=$(run_daemon fifo-psk --data-dir "$WORK/d-fifo" --swarm-key "$WORK/fifo.key")
[ "$rc" = 1 ] || fail "FIFO swarm key: exit status $rc, want 1 (124 = hung)"
grep -q "not a regular file" "$WORK/fifo-psk.err" ||
    fail "FIFO swarm key: no 'not a regular file' message: $(cat "$WORK/fifo-psk.err")"

log "a directory as --identity: refused the same way"
rc=$(run_daemon dir-id --data-dir "$WORK/d-fifo" --identity "$WORK/d-fifo")
[ "$rc" = 1 ] || fail "directory identity: exit status $rc, want 1"
grep -q "not a regular file" "$WORK/dir-id.err" ||
    fail "directory identity: no 'not a regular file' message: $(cat "$WORK/dir-id.err")"

log "a bad swarm key and no identity yet: exit 1 and no identity.key is created"
printf '/key/swarm/psk/1.0.0/\n/base16/\nnot-hex\n' >"$WORK/bad.psk"
chmod 600 "$WORK/bad.psk"
rc=$(run_daemon badpsk --data-dir "$WORK/d-badpsk" --swarm-key "$WORK/bad.psk")
[ "$rc" = 1 ] || fail "bad swarm key: exit status $rc, want 1"
grep -q "cannot load swarm key" "$WORK/badpsk.err" ||
    fail "bad swarm key: no 'cannot load swarm key' message: $(cat "$WORK/badpsk.err")"
[ ! -e "$WORK/d-badpsk/identity.key" ] || fail "bad swarm key: identity.key was created anyway"
left=$(find "$WORK/d-badpsk" -name 'identity.key*' 2>/dev/null | wc -l)
[ "$left" = 0 ] || fail "bad swarm key: $left identity file(s) left: $(ls -la "$WORK/d-badpsk")"
# The same with a FIFO as the swarm key.
rc=$(run_daemon fifopsk-new --data-dir "$WORK/d-badpsk" --swarm-key "$WORK/fifo.key")
[ "$rc" = 1 ] || fail "FIFO swarm key, new data dir: exit status $rc, want 1"
[ ! -e "$WORK/d-badpsk/identity.key" ] || fail "FIFO swarm key: identity.key was created anyway"

log "first start: the daemon creates its identity with mode 0600"
D=$WORK/d-main
start_dmsnet_daemon first --data-dir "$D" "${LISTEN[@]}"
first_id=$DMSNET_PEER_ID
stop_pid "$DMSNET_PID" || fail "the first daemon did not exit 0 on SIGTERM"
[ -f "$D/identity.key" ] || fail "no identity.key after the first start"
[ "$(mode_of "$D/identity.key")" = 600 ] ||
    fail "identity.key has mode $(mode_of "$D/identity.key"), want 600"
[ "$(mode_of "$D")" = 700 ] || fail "the data dir has mode $(mode_of "$D"), want 700"

log "stale temporaries in the data dir are removed at start; look-alikes are kept"
cp "$D/identity.key" "$D/identity.key.tmp.Ab3xZ9" # what a writer killed before its rename leaves
cp "$D/identity.key" "$D/identity.key.tmp.000000"
chmod 600 "$D"/identity.key.tmp.*
keep=(identity.key.tmp.toolong1 identity.key.tmp.abc identity.key.tmp.ab-def other.key.tmp.Ab3xZ9
    identity.keyXtmp.Ab3xZ9)
for f in "${keep[@]}"; do echo decoy >"$D/$f"; done
echo target >"$WORK/symlink-target"
ln -s "$WORK/symlink-target" "$D/identity.key.tmp.Link01"
keep+=(identity.key.tmp.Link01)
mkdir "$D/identity.key.tmp.Dir001" # not a regular file
keep+=(identity.key.tmp.Dir001)
if [ "$(id -u)" = 0 ]; then
    # Only root can make a file someone else owns; such a file is never ours to remove.
    echo theirs >"$D/identity.key.tmp.Other1"
    chown 65534:65534 "$D/identity.key.tmp.Other1"
    keep+=(identity.key.tmp.Other1)
fi
# A writer still at work holds an exclusive flock on its temporary: not stale.
start_bg live flock -x "$D/identity.key.tmp.Live01" -c 'echo locked; sleep 30'
LIVE_PID=$BG_PID
wait_for_line "$WORK/live.out" '^locked' 5 "$LIVE_PID" >/dev/null || fail "flock did not take its lock"
keep+=(identity.key.tmp.Live01)

start_dmsnet_daemon second --data-dir "$D" "${LISTEN[@]}"
[ "$DMSNET_PEER_ID" = "$first_id" ] ||
    fail "the second start has peer id $DMSNET_PEER_ID, not the stored $first_id"
stop_pid "$DMSNET_PID" || fail "the second daemon did not exit 0 on SIGTERM"
for f in identity.key.tmp.Ab3xZ9 identity.key.tmp.000000; do
    [ ! -e "$D/$f" ] || fail "stale $f was not removed at start"
done
for f in "${keep[@]}"; do
    [ -e "$D/$f" ] || [ -L "$D/$f" ] || fail "$f was removed, but it is not a stale temporary of ours"
done
[ "$(cat "$WORK/symlink-target")" = target ] || fail "the symlink's target was changed"
n=$(count_lines "$DMSNET_LOG" 'identity\.key\.tmp\..*interrupted write')
[ "$n" = 2 ] || fail "want 2 log lines about removed temporaries, got $n"
stop_pid "$LIVE_PID" >/dev/null 2>&1 || true
[ -e "$D/identity.key.tmp.Live01" ] || fail "the live writer's temporary vanished"

log "writing a key removes stale temporaries too (keygen, swarm-key new --force)"
K=$WORK/keys
mkdir "$K"
echo stale >"$K/node.key.tmp.Q1w2E3"
chmod 600 "$K/node.key.tmp.Q1w2E3"
"$DMSNET" keygen --out "$K/node.key" >"$WORK/keygen.out" 2>"$WORK/keygen.err" ||
    fail "keygen failed: $(cat "$WORK/keygen.err")"
[ ! -e "$K/node.key.tmp.Q1w2E3" ] || fail "keygen left the stale temporary"
[ "$(mode_of "$K/node.key")" = 600 ] || fail "keygen wrote mode $(mode_of "$K/node.key"), want 600"
echo stale >"$K/node.key.tmp.R4t5Y6"
"$DMSNET" keygen --out "$K/node.key" --force >/dev/null 2>"$WORK/keygen2.err" ||
    fail "keygen --force failed: $(cat "$WORK/keygen2.err")"
[ ! -e "$K/node.key.tmp.R4t5Y6" ] || fail "keygen --force left the stale temporary"
[ "$(mode_of "$K/node.key")" = 600 ] || fail "keygen --force: mode $(mode_of "$K/node.key")"

"$DMSNET" swarm-key new --out "$K/swarm.key" 2>"$WORK/psk.err" || fail "swarm-key new: $(cat "$WORK/psk.err")"
[ "$(mode_of "$K/swarm.key")" = 600 ] || fail "swarm-key new: mode $(mode_of "$K/swarm.key")"
echo stale >"$K/swarm.key.tmp.U7i8O9"
chmod 644 "$K/swarm.key"
"$DMSNET" swarm-key new --out "$K/swarm.key" --force 2>"$WORK/psk2.err" ||
    fail "swarm-key new --force: $(cat "$WORK/psk2.err")"
[ ! -e "$K/swarm.key.tmp.U7i8O9" ] || fail "swarm-key new --force left the stale temporary"
[ "$(mode_of "$K/swarm.key")" = 600 ] || fail "swarm-key new --force: mode $(mode_of "$K/swarm.key")"
left=$(find "$K" -name '*.tmp.*' | wc -l)
[ "$left" = 0 ] || fail "temporaries left in $K: $(ls -la "$K")"

log "the key files load: the daemon starts with the written identity and swarm key"
start_dmsnet_daemon third --data-dir "$WORK/d-third" --identity "$K/node.key" \
    --swarm-key "$K/swarm.key" "${LISTEN[@]}"
want=$("$DMSNET" id --identity "$K/node.key") || fail "dmsnet id failed"
[ "$DMSNET_PEER_ID" = "$want" ] || fail "daemon peer id $DMSNET_PEER_ID, keygen said $want"
stop_pid "$DMSNET_PID" || fail "the third daemon did not exit 0 on SIGTERM"
[ ! -e "$WORK/d-third/identity.key" ] || fail "--identity given, yet DATA_DIR/identity.key was made"

log "PASS"
