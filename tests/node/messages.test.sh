#!/usr/bin/env bash
# Typed messages between daemons through the CLI (issue 10, the Messenger in the node):
# `dmsnet messages listen --type T` serves T and prints each message with an id, `dmsnet send`
# delivers, `dmsnet request` gets the reply `dmsnet messages reply <id>` writes, a type nobody
# serves is refused, a payload of 1 MiB goes and one of 1 MiB + 1 is refused before anything
# is sent, and the receiver's bytes are escaped for people (raw in --json, base64).
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../interop/lib.sh"

require_dmsnet
command -v jq >/dev/null 2>&1 || fail "jq is needed (scripts/setup.sh --test installs it)"

start() { # NAME: a daemon on loopback with its own data dir; sets <NAME>_DIR, _MA, _ID
    local dir="$WORK/$1"
    mkdir -p "$dir"
    start_dmsnet_daemon "$1" --data-dir "$dir" --listen /ip4/127.0.0.1/tcp/0 --log warn
    wait_for_line "$DMSNET_LOG" "^api listening on unix:" 10 "$DMSNET_PID" >/dev/null ||
        fail "$1: no api line"
    printf -v "${1}_DIR" '%s' "$dir"
    printf -v "${1}_MA" '%s' "$DMSNET_MA"
    printf -v "${1}_ID" '%s' "$DMSNET_PEER_ID"
}
start a
start b
T=/dmsnet-test/echo/1.0.0

log "a peer the node cannot reach (no address known, no DHT yet) is a clear error"
"$DMSNET" send "$b_ID" --type "$T" x --data-dir "$a_DIR" 2>"$WORK/unreach.err" && fail "sent to an unknown peer"
grep -q "cannot reach $b_ID" "$WORK/unreach.err" || fail "unclear: $(cat "$WORK/unreach.err")"
"$DMSNET" connect "$b_MA" --data-dir "$a_DIR" >/dev/null || fail "connect"

log "B listens for $T; A sends, then requests"
start_bg listen "$DMSNET" messages listen --type "$T" --data-dir "$b_DIR"
start_bg listenj "$DMSNET" messages listen --type "$T" --json --data-dir "$b_DIR"
sleep 0.5 # the listeners' streams are up before the first message
"$DMSNET" send "$b_ID" --type "$T" $'hello\x1b[2J' --data-dir "$a_DIR" >"$WORK/send.out" 2>&1 ||
    fail "send: $(cat "$WORK/send.out")"
wait_for_line "$WORK/listen.out" "^1 $a_ID $T hello" 5 >/dev/null || fail "B did not print the message"
grep -qF 'hello\x1b[2J' "$WORK/listen.out" || fail "the payload was not escaped: $(cat -v "$WORK/listen.out")"
LC_ALL=C grep -q $'\x1b' "$WORK/listen.out" && fail "a control byte reached the listener's output"
wait_for_line "$WORK/listenj.out" '"id":1' 5 >/dev/null || fail "no JSON line"
[ "$(head -1 "$WORK/listenj.out" | jq -r .data | base64 -d)" = $'hello\x1b[2J' ] ||
    fail "JSON data is not the payload: $(head -1 "$WORK/listenj.out")"
[ "$(head -1 "$WORK/listenj.out" | jq -r .from)" = "$a_ID" ] || fail "JSON from is not A"

start_bg req "$DMSNET" request "$b_ID" --type "$T" "question" --timeout 10 --data-dir "$a_DIR"
req_PID=$BG_PID
line=$(wait_for_line "$WORK/listen.out" "^[0-9]+ $a_ID $T question\$" 5) || fail "no request line"
id=${line%% *}
printf 'the answer\n' >"$WORK/answer"
"$DMSNET" messages reply "$id" @"$WORK/answer" --data-dir "$b_DIR" >/dev/null || fail "reply failed"
for ((i = 0; i < 50; i++)); do
    kill -0 "$req_PID" 2>/dev/null || break
    sleep 0.1
done
wait "$req_PID" || fail "request exited non-zero: $(cat "$WORK/req.out")"
[ "$(cat "$WORK/req.out")" = "the answer" ] || fail "request printed '$(cat "$WORK/req.out")'"
"$DMSNET" messages reply "$id" "again" --data-dir "$b_DIR" 2>"$WORK/again.err" &&
    fail "a second reply to one message was accepted"

log "refusals: unknown type, too big, no daemon"
"$DMSNET" send "$b_ID" --type /dmsnet-test/nobody/1 "x" --data-dir "$a_DIR" 2>"$WORK/nope.err" &&
    fail "a type nobody serves was accepted"
grep -q 'does not serve this message type' "$WORK/nope.err" || fail "unclear: $(cat "$WORK/nope.err")"
head -c 1048576 /dev/urandom >"$WORK/1m"
"$DMSNET" send "$b_ID" --type "$T" @"$WORK/1m" --data-dir "$a_DIR" >/dev/null 2>"$WORK/1m.err" ||
    fail "1 MiB refused: $(cat "$WORK/1m.err")"
wait_for_line "$WORK/listenj.out" '"id":3' 10 >/dev/null || fail "the 1 MiB message did not arrive"
[ "$(sed -n 3p "$WORK/listenj.out" | jq -r .data | base64 -d | cmp - "$WORK/1m" && echo same)" = same ] ||
    fail "the 1 MiB payload changed on the way"
head -c 1048577 /dev/zero >"$WORK/1m1"
"$DMSNET" send "$b_ID" --type "$T" @"$WORK/1m1" --data-dir "$a_DIR" 2>"$WORK/1m1.err" &&
    fail "1 MiB + 1 was accepted"
grep -q 'larger than the limit' "$WORK/1m1.err" || fail "unclear: $(cat "$WORK/1m1.err")"
"$DMSNET" send "$b_ID" --type "$T" x --data-dir "$WORK/none" 2>"$WORK/nod.err" && fail "no daemon: exit 0"
grep -qx "dmsnet send: no daemon running at $WORK/none/api.sock" "$WORK/nod.err" ||
    fail "no daemon: $(cat "$WORK/nod.err")"

log "curl: the same endpoint, and its limits"
code=$(printf '{"peer":"%s","type":"%s","data":"%s"}' "$b_ID" "$T" "$(printf 'via curl' | base64)" |
    curl -s -o "$WORK/curl.out" -w '%{http_code}' --unix-socket "$a_DIR/api.sock" \
        -X POST -H 'Content-Type: application/json' --data-binary @- http://localhost/v0/send)
[ "$code" = 200 ] || fail "curl send: $code $(cat "$WORK/curl.out")"
code=$(curl -s -o "$WORK/curl.out" -w '%{http_code}' --unix-socket "$a_DIR/api.sock" -X POST \
    --data '{"peer":"nope","type":"/x","data":""}' http://localhost/v0/send)
[ "$code" = 400 ] || fail "a bad peer id: HTTP $code"
echo ok
