#!/usr/bin/env bash
# gossipsub through the daemons' API and CLI (issue 10): four daemons on loopback, B and C
# connected to A, D to B. `dmsnet pubsub sub T` on B, C and D, `dmsnet pubsub pub T` on A:
# every subscriber gets each message with A as its author, one seqno for all of them
# (consecutive messages: seqno + 1) and the bytes sent (escaped for people, base64 in --json);
# D (pubsub.router floodsub) gets them forwarded by B. `pubsub peers T` lists the subscribers; 1 MiB goes, 1 MiB + 1
# is refused (CLI and API); no daemon is exit 1.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../interop/lib.sh"

require_dmsnet
command -v jq >/dev/null 2>&1 || fail "jq is needed (scripts/setup.sh --test installs it)"

start() { # NAME [CONFIG]: a daemon on loopback with its own data dir; sets <NAME>_DIR, _MA, _ID
    local dir="$WORK/$1"
    mkdir -p "$dir"
    [ -n "${2-}" ] && printf '%s\n' "$2" >"$dir/config.json"
    start_dmsnet_daemon "$1" --data-dir "$dir" --listen /ip4/127.0.0.1/tcp/0 --log warn
    wait_for_line "$DMSNET_LOG" "^api listening on unix:" 10 "$DMSNET_PID" >/dev/null ||
        fail "$1: no api line"
    printf -v "${1}_DIR" '%s' "$dir"
    printf -v "${1}_MA" '%s' "$DMSNET_MA"
    printf -v "${1}_ID" '%s' "$DMSNET_PEER_ID"
}
start a
start b
start c
start d '{"pubsub": {"router": "floodsub"}}' # speaks only /floodsub/1.0.0
"$DMSNET" connect "$a_MA" --data-dir "$b_DIR" >/dev/null || fail "b connect a"
"$DMSNET" connect "$a_MA" --data-dir "$c_DIR" >/dev/null || fail "c connect a"
"$DMSNET" connect "$b_MA" --data-dir "$d_DIR" >/dev/null || fail "d connect b"
T="/dmsnet-test/chat 1"
for ((i = 0; i < 50; i++)); do # identify tells B what D speaks
    "$DMSNET" peers --json --data-dir "$b_DIR" | jq -e --arg d "$d_ID" \
        '.peers[] | select(.peer_id == $d) | .protocols | index("/floodsub/1.0.0") != null' >/dev/null && break
    sleep 0.1
done
"$DMSNET" peers --json --data-dir "$b_DIR" | jq -e --arg d "$d_ID" '.peers[] | select(.peer_id == $d) |
    .protocols | index("/floodsub/1.0.0") != null and (map(select(startswith("/meshsub"))) | length) == 0' \
    >/dev/null || fail "D does not speak floodsub only: $("$DMSNET" peers --json --data-dir "$b_DIR")"

log "B, C and D subscribe to '$T'"
start_bg subb "$DMSNET" pubsub sub "$T" --data-dir "$b_DIR"
start_bg subbj "$DMSNET" pubsub sub "$T" --json --data-dir "$b_DIR"
start_bg subcj "$DMSNET" pubsub sub "$T" --json --data-dir "$c_DIR"
start_bg subdj "$DMSNET" pubsub sub "$T" --json --data-dir "$d_DIR"

# A learns the subscriptions from B's and C's announcements; B from D's.
for ((i = 0; i < 100; i++)); do
    peers=$("$DMSNET" pubsub peers "$T" --data-dir "$a_DIR" 2>/dev/null)
    bpeers=$("$DMSNET" pubsub peers "$T" --data-dir "$b_DIR" 2>/dev/null)
    grep -qx "$b_ID" <<<"$peers" && grep -qx "$c_ID" <<<"$peers" && grep -qx "$d_ID" <<<"$bpeers" && break
    sleep 0.1
done
grep -qx "$b_ID" <<<"$peers" && grep -qx "$c_ID" <<<"$peers" ||
    fail "pubsub peers on A does not list B and C: $peers"
grep -qx "$d_ID" <<<"$bpeers" || fail "pubsub peers on B does not list D: $bpeers"
[ "$(wc -l <<<"$peers")" = 2 ] || fail "A lists other peers than B and C: $peers"
"$DMSNET" pubsub peers "$T" --json --data-dir "$a_DIR" | jq -e --arg b "$b_ID" --arg c "$c_ID" \
    '.topic == "/dmsnet-test/chat 1" and (.peers | index($b)) != null and (.peers | index($c)) != null' \
    >/dev/null || fail "pubsub peers --json: $("$DMSNET" pubsub peers "$T" --json --data-dir "$a_DIR")"
"$DMSNET" pubsub peers /dmsnet-test/nobody --data-dir "$a_DIR" >"$WORK/nobody.out" || fail "peers of an empty topic"
[ -s "$WORK/nobody.out" ] && fail "a topic nobody is in has peers: $(cat "$WORK/nobody.out")"
code=$(curl -s -o "$WORK/topics.out" -w '%{http_code}' --unix-socket "$b_DIR/api.sock" http://localhost/v0/pubsub/topics)
[ "$code" = 200 ] && jq -e --arg t "$T" '.topics | index($t) != null' "$WORK/topics.out" >/dev/null ||
    fail "B's topics: $code $(cat "$WORK/topics.out")"

log "A publishes two messages (the first with a terminal escape in it)"
# The mesh forms at the heartbeat; flood publishing reaches B and C at once anyway.
"$DMSNET" pubsub pub "$T" $'hello\x1b[2J' --data-dir "$a_DIR" >"$WORK/pub1.out" 2>&1 ||
    fail "pub: $(cat "$WORK/pub1.out")"
grep -qE '^published to [1-9][0-9]* peers?$' "$WORK/pub1.out" || fail "pub printed: $(cat "$WORK/pub1.out")"
printf 'second\n' | "$DMSNET" pubsub pub "$T" - --json --data-dir "$a_DIR" >"$WORK/pub2.out" ||
    fail "pub from stdin: $(cat "$WORK/pub2.out")"
jq -e '.peers >= 1' "$WORK/pub2.out" >/dev/null || fail "pub --json: $(cat "$WORK/pub2.out")"
for s in subbj subcj subdj; do
    for ((i = 0; i < 100; i++)); do
        [ "$(count_lines "$WORK/$s.out" '"from"')" -ge 2 ] && break
        sleep 0.1
    done
    [ "$(count_lines "$WORK/$s.out" '"from"')" = 2 ] ||
        fail "$s: expected 2 messages: $(cat "$WORK/$s.out")"
    jq -e --arg a "$a_ID" --arg t "$T" '.from == $a and .topic == $t' "$WORK/$s.out" >/dev/null ||
        fail "$s: not from A on $T: $(cat "$WORK/$s.out")"
    [ "$(sed -n 1p "$WORK/$s.out" | jq -r .data | base64 -d)" = $'hello\x1b[2J' ] ||
        fail "$s: the first data is not what A sent: $(sed -n 1p "$WORK/$s.out")"
    [ "$(sed -n 2p "$WORK/$s.out" | jq -r .data | base64 -d)" = second ] ||
        fail "$s: the second data is not what A sent: $(sed -n 2p "$WORK/$s.out")"
done
seq1=$(sed -n 1p "$WORK/subbj.out" | jq -r .seqno)
seq2=$(sed -n 2p "$WORK/subbj.out" | jq -r .seqno)
[[ $seq1 =~ ^[0-9]+$ ]] || fail "seqno is not a decimal string: $seq1"
[ "$seq2" = "$((seq1 + 1))" ] || fail "consecutive messages: seqno $seq1 then $seq2"
for s in subcj subdj; do
    [ "$(jq -r .seqno "$WORK/$s.out" | tr '\n' ' ')" = "$seq1 $seq2 " ] ||
        fail "$s saw other seqnos: $(jq -r .seqno "$WORK/$s.out" | tr '\n' ' ') (B: $seq1 $seq2)"
done
wait_for_line "$WORK/subb.out" "^$a_ID $seq2 second\\\\x0a\$" 5 >/dev/null ||
    fail "B's human lines: $(cat -v "$WORK/subb.out")"
grep -qxF "$a_ID $seq1 hello\\x1b[2J" "$WORK/subb.out" || fail "not escaped: $(cat -v "$WORK/subb.out")"
LC_ALL=C grep -q $'\x1b' "$WORK/subb.out" && fail "a control byte reached the subscriber's output"

log "1 MiB is delivered; 1 MiB + 1 is refused by the CLI and by the API"
head -c 1048576 /dev/urandom >"$WORK/1m"
"$DMSNET" pubsub pub "$T" @"$WORK/1m" --data-dir "$a_DIR" >"$WORK/1m.out" 2>&1 || fail "1 MiB: $(cat "$WORK/1m.out")"
for ((i = 0; i < 100; i++)); do
    [ "$(count_lines "$WORK/subcj.out" '"from"')" -ge 3 ] && break
    sleep 0.1
done
sed -n 3p "$WORK/subcj.out" | jq -r .data | base64 -d | cmp -s - "$WORK/1m" ||
    fail "C did not get the 1 MiB message whole"
head -c 1048577 /dev/zero >"$WORK/1m1"
"$DMSNET" pubsub pub "$T" @"$WORK/1m1" --data-dir "$a_DIR" 2>"$WORK/1m1.err" && fail "1 MiB + 1 was accepted"
grep -q 'larger than the limit' "$WORK/1m1.err" || fail "unclear: $(cat "$WORK/1m1.err")"
printf '{"topic":"%s","data":"%s"}' "$T" "$(base64 -w0 "$WORK/1m1")" >"$WORK/1m1.json"
code=$(curl -s -o "$WORK/curl.out" -w '%{http_code}' --unix-socket "$a_DIR/api.sock" -X POST \
    -H 'Content-Type: application/json' --data-binary @"$WORK/1m1.json" http://localhost/v0/pubsub/pub)
[ "$code" = 413 ] && grep -q 'larger than the limit' "$WORK/curl.out" ||
    fail "API: 1 MiB + 1 answered $code $(cat "$WORK/curl.out")"
code=$(curl -s -o "$WORK/curl.out" -w '%{http_code}' --unix-socket "$a_DIR/api.sock" http://localhost/v0/pubsub/sub)
[ "$code" = 400 ] || fail "sub without a topic: HTTP $code"
sleep 0.3
[ "$(count_lines "$WORK/subcj.out" '"from"')" = 3 ] || fail "C got more than the three messages"

log "a listener that does not read is dropped, and the node leaves a topic nobody wants"
T2=/dmsnet-test/unread
# curl writes into a pipe nobody reads: once that and the socket buffers are full the
# daemon's queue for it grows to its bound (3 MB) and the listener is dropped.
curl -sN --unix-socket "$b_DIR/api.sock" "http://localhost/v0/pubsub/sub?topic=$T2" | sleep 60 &
register_pid $!
for ((i = 0; i < 50; i++)); do
    curl -s --unix-socket "$b_DIR/api.sock" http://localhost/v0/pubsub/topics | grep -q unread && break
    sleep 0.1
done
for ((i = 0; i < 50; i++)); do
    "$DMSNET" pubsub peers "$T2" --data-dir "$a_DIR" | grep -qx "$b_ID" && break
    sleep 0.1
done
head -c 700000 /dev/urandom >"$WORK/700k"
for ((i = 0; i < 12; i++)); do
    "$DMSNET" pubsub pub "$T2" @"$WORK/700k" --data-dir "$a_DIR" >/dev/null || fail "pub on $T2"
done
for ((i = 0; i < 50; i++)); do
    curl -s --unix-socket "$b_DIR/api.sock" http://localhost/v0/pubsub/topics | grep -q unread || break
    sleep 0.1
done
curl -s --unix-socket "$b_DIR/api.sock" http://localhost/v0/pubsub/topics | grep -q unread &&
    fail "B is still in $T2 (the listener that does not read was not dropped)"
"$DMSNET" pubsub pub "$T" 'still here' --data-dir "$a_DIR" >/dev/null || fail "pub after the drop"
wait_for_line "$WORK/subbj.out" "$(printf 'still here' | base64)" 5 >/dev/null ||
    fail "B's other listener stopped getting messages"

log "refusals: usage, no daemon"
"$DMSNET" pubsub pub "$T" --data-dir "$a_DIR" 2>/dev/null
[ $? = 2 ] || fail "pub without data: not a usage error"
"$DMSNET" pubsub sub "$T" --data-dir "$WORK/none" 2>"$WORK/nod.err" && fail "no daemon: exit 0"
grep -qx "dmsnet pubsub: no daemon running at $WORK/none/api.sock" "$WORK/nod.err" ||
    fail "no daemon: $(cat "$WORK/nod.err")"
"$DMSNET" pubsub pub "$T" x --data-dir "$WORK/none" 2>/dev/null
[ $? = 1 ] || fail "pub, no daemon: not exit 1"
echo ok
