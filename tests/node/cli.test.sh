#!/usr/bin/env bash
# The daemon's local API and the CLI as its client (issue 9, section 3).
# Two daemons on loopback, each with its own data dir; every client command
# (status, peers, connect, disconnect, events, config show/set) and the same
# endpoints with curl; the socket and token modes; TCP and the bearer token;
# oversized, malformed and unknown requests; a configuration change that
# survives a restart; "no daemon running"; and an event client that never
# reads while the node makes many events (the node keeps answering, its
# memory stays bounded).
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../interop/lib.sh"

require_dmsnet
for t in curl jq; do
    command -v $t >/dev/null 2>&1 || fail "$t is needed (scripts/setup.sh --test installs it)"
done
CYCLES=${CYCLES:-1600}
# Under ASan freed memory sits in a quarantine (256 MiB by default) and
# shows in RSS: keep it small, so that the RSS bound below measures the
# daemon, not the sanitizer. A use after free is still caught while the
# block is in the last 16 MiB freed.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=16 # connect/disconnect rounds under the never-reading client

# free_port: a TCP port nothing listens on now (the configuration refuses
# api.listen port 0, so the test picks one).
free_port() {
    local p i
    for ((i = 0; i < 100; i++)); do
        # below the ephemeral range (32768+): other tests' outgoing sockets and
        # port-0 listeners take ports there between this check and the bind
        p=$((20000 + RANDOM % 12768))
        [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return 0; }
    done
    fail "no free TCP port found"
}

# start_node NAME DIR [daemon args]: start a daemon; sets <NAME>_MA, <NAME>_ID,
# <NAME>_PID, <NAME>_LOG, <NAME>_PORT (the TCP API port).
start_node() {
    local name=$1 dir=$2 line port
    shift 2
    start_dmsnet_daemon "$name" --data-dir "$dir" --listen /ip4/127.0.0.1/tcp/0 \
        --api-listen "/ip4/127.0.0.1/tcp/$(free_port)" --log info "$@"
    wait_for_line "$DMSNET_LOG" "^api listening on unix:$dir/api.sock\$" 10 "$DMSNET_PID" \
        >/dev/null || fail "$name: no 'api listening on unix:$dir/api.sock' line"
    line=$(wait_for_line "$DMSNET_LOG" '^api listening on /ip4/127\.0\.0\.1/tcp/[0-9]+$' 10 \
        "$DMSNET_PID") || fail "$name: no 'api listening on /ip4/127.0.0.1/tcp/PORT' line"
    port=${line##*/tcp/}
    printf -v "${name}_MA" '%s' "$DMSNET_MA"
    printf -v "${name}_ID" '%s' "$DMSNET_PEER_ID"
    printf -v "${name}_PID" '%s' "$DMSNET_PID"
    printf -v "${name}_LOG" '%s' "$DMSNET_LOG"
    printf -v "${name}_PORT" '%s' "$port"
}

# stop_node NAME: SIGTERM; the daemon must exit 0.
stop_node() {
    local pid_var=${1}_PID rc
    stop_pid "${!pid_var}"
    rc=$?
    [ $rc -eq 0 ] || fail "$1: daemon exited $rc on SIGTERM, not 0"
}

# dm NAME ARGS...: run the CLI; stdout in $OUT, stderr in $ERR, status in $RC.
dm() {
    local n=$1
    shift
    timeout -k 5 60 "$DMSNET" "$@" >"$WORK/$n.cli.out" 2>"$WORK/$n.cli.err"
    RC=$?
    OUT=$(cat "$WORK/$n.cli.out")
    ERR=$(cat "$WORK/$n.cli.err")
}

# api DIR METHOD PATH [BODY]: curl over the unix socket; body in $OUT, HTTP
# status in $CODE.
api() {
    local dir=$1 method=$2 path=$3 body=${4-}
    local args=(-sS --max-time 30 --unix-socket "$dir/api.sock" -X "$method" -o "$WORK/curl.out"
        -w '%{http_code}')
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    CODE=$(curl "${args[@]}" "http://localhost$path") || CODE=curl-failed
    OUT=$(cat "$WORK/curl.out" 2>/dev/null)
}

# expect_code WHAT CODE: $CODE is CODE and $OUT a JSON body (an {"error"} one
# for a status >= 400).
expect_code() {
    [ "$CODE" = "$2" ] || fail "$1: HTTP $CODE, expected $2 (body: $OUT)"
    if [ "$2" -ge 400 ]; then
        jq -e 'has("error") and (.error | type == "string")' <<<"$OUT" >/dev/null ||
            fail "$1: the $2 body is not a JSON error: $OUT"
    else
        jq -e . <<<"$OUT" >/dev/null || fail "$1: the body is not JSON: $OUT"
    fi
}

# peer_count DIR: connected peers of the daemon at DIR.
peer_count() {
    api "$1" GET /v0/peers
    jq '.peers | length' <<<"$OUT"
}

# wait_peers DIR N: until the daemon has N peers (5 s).
wait_peers() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$(peer_count "$1")" = "$2" ] && return 0
        sleep 0.05
    done
    fail "the daemon at $1 has $(peer_count "$1") peers, expected $2"
}

# wait_event FILE JQ-FILTER WHAT: until a line of FILE (NDJSON) matches.
wait_event() {
    local i
    for ((i = 0; i < 100; i++)); do
        [ -s "$1" ] && jq -e -s "map(select($2)) | length > 0" "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "no event $3 in ${1##*/}"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

A=$WORK/a
B=$WORK/b
NONE=$WORK/none

# ---- no daemon ----
mkdir -p "$NONE"
for cmd in status peers events "connect /ip4/127.0.0.1/tcp/1" \
    "disconnect 12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA" "config set log debug"; do
    name=${cmd%% *}
    # shellcheck disable=SC2086 # the command's words
    dm none $cmd --data-dir "$NONE"
    [ "$RC" = 1 ] || fail "'dmsnet $cmd' without a daemon exited $RC, not 1"
    [ "$ERR" = "dmsnet $name: no daemon running at $NONE/api.sock" ] ||
        fail "'dmsnet $cmd' without a daemon said: $ERR"
done
DMSNET_HOME=$NONE dm none status
[ "$RC" = 1 ] && [ "$ERR" = "dmsnet status: no daemon running at $NONE/api.sock" ] ||
    fail "DMSNET_HOME is not where status looks: $ERR"
log "no daemon: every client command says so and exits 1"

# config show without a daemon: defaults + config.json, a note, exit 0
printf '{"log": "warn", "limits": {"max_conns": 321}}\n' >"$NONE/config.json"
dm none config show --json --data-dir "$NONE"
[ "$RC" = 0 ] || fail "config show without a daemon exited $RC: $ERR"
grep -q "no daemon running at $NONE/api.sock" <<<"$ERR" || fail "config show: no note on stderr: $ERR"
jq -e '.log == "warn" and .limits.max_conns == 321 and .channel.name == "dmsnet"' <<<"$OUT" \
    >/dev/null || fail "config show without a daemon: not defaults + config.json: $OUT"
dm none config show --data-dir "$NONE"
grep -Eq '^limits\.max_conns +321$' <<<"$OUT" || fail "config show (human): $OUT"
log "config show without a daemon: defaults + config.json, note on stderr, exit 0"

# usage errors exit 2
dm usage status --bogus --data-dir "$NONE"
[ "$RC" = 2 ] || fail "status --bogus exited $RC, not 2"
dm usage connect --data-dir "$NONE"
[ "$RC" = 2 ] || fail "connect without an address exited $RC, not 2"
dm usage connect /ip4/1.2.3.4/tcp/x --data-dir "$NONE"
[ "$RC" = 2 ] || fail "connect with a bad multiaddr exited $RC, not 2"
dm usage status --help
[ "$RC" = 0 ] && grep -q -- '--data-dir' <<<"$OUT" || fail "status --help: $RC $OUT"

# ---- two daemons ----
start_node A "$A"
start_node B "$B"
log "daemons: A $A_ID (api port $A_PORT), B $B_ID"

# modes: socket and token 0600
for f in "$A/api.sock" "$A/api.token"; do
    [ -e "$f" ] || fail "$f does not exist"
    m=$(stat -c %a "$f")
    [ "$m" = 600 ] || fail "$f has mode $m, not 600"
done
[ -S "$A/api.sock" ] || fail "$A/api.sock is not a socket"

# events: one CLI follower (JSON), one human, one curl
start_bg evjson "$DMSNET" events --json --data-dir "$A"
EVJ_PID=$BG_PID
start_bg evhuman "$DMSNET" events --data-dir "$A"
start_bg evcurl curl -sS -N --unix-socket "$A/api.sock" http://localhost/v0/events
start_bg evfilter "$DMSNET" events --json --types peer_connectedness_changed --data-dir "$A"
sleep 1 # let the streams open before the events they must see
kill -0 "$EVJ_PID" 2>/dev/null || fail "dmsnet events exited at once: $(cat "$WORK/evjson.err")"

# status
dm st status --json --data-dir "$A"
[ "$RC" = 0 ] || fail "status --json: $RC $ERR"
jq -e --arg id "$A_ID" '(.peer_id == $id) and (.listen_addrs | type == "array")
    and (.listen_addrs | map(startswith("/ip4/127.0.0.1/tcp/")) | any)
    and (.observed_addrs | type == "array") and (.reachability | IN("unknown","public","private"))
    and (.nat_type | IN("unknown","cone","symmetric")) and (.mode | type == "string")
    and (.peers == []) and has("network") and (.bytes_in | type == "number")
    and (.bytes_out | type == "number") and (.uptime_ms | type == "number")
    and (.agent_version | type == "string")' <<<"$OUT" >/dev/null ||
    fail "status --json lacks keys or has wrong values: $OUT"
dm st status --data-dir "$A"
[ "$RC" = 0 ] && grep -Eq "^peer id +$A_ID\$" <<<"$OUT" || fail "status (human): $RC $OUT"
dm pe peers --json --data-dir "$A"
[ "$RC" = 0 ] && jq -e '.peers == []' <<<"$OUT" >/dev/null || fail "peers --json at start: $OUT"
dm pe peers --data-dir "$A"
[ "$RC" = 0 ] && [ "$OUT" = "no peers connected" ] || fail "peers (human), none: $OUT"

# connect by multiaddr
dm co connect "$B_MA" --data-dir "$A"
[ "$RC" = 0 ] || fail "connect $B_MA: $RC $ERR"
[ "$OUT" = "connected to $B_ID" ] || fail "connect printed: $OUT"
dm pe peers --json --data-dir "$A"
jq -e --arg id "$B_ID" '(.peers | length) == 1 and .peers[0].peer_id == $id
    and .peers[0].direction == "outbound" and (.peers[0].addrs | length) >= 1
    and (.peers[0].protocols | type) == "array" and (.peers[0].agent | type) == "string"
    and (.peers[0] | has("rtt_ms"))' <<<"$OUT" >/dev/null || fail "peers --json after connect: $OUT"
dm pe peers --json --data-dir "$B"
jq -e --arg id "$A_ID" '(.peers | length) == 1 and .peers[0].peer_id == $id
    and .peers[0].direction == "inbound"' <<<"$OUT" >/dev/null || fail "B's peers: $OUT"
wait_event "$WORK/evjson.out" ".type == \"peer_identification_completed\" and .peer == \"$B_ID\"" \
    "peer_identification_completed for B"
dm pe peers --data-dir "$A"
grep -Eq "^PEER ID +DIRECTION +RTT +AGENT +ADDRS\$" <<<"$OUT" || fail "peers (human) header: $OUT"
grep -Eq "^$B_ID +outbound +.*dmsnet.*/ip4/127\.0\.0\.1/tcp/" <<<"$OUT" || fail "peers (human) row: $OUT"

# events of the connection
wait_event "$WORK/evjson.out" ".type == \"peer_connectedness_changed\" and .peer == \"$B_ID\"
    and .connectedness == \"connected\" and (.time | type == \"number\")" "connected(B)"
jq -e -s --arg id "$B_ID" 'map(select(.type == "peer_identification_completed" and .peer == $id))
    | .[0] | (.agent | test("dmsnet")) and (.protocols | index("/ipfs/ping/1.0.0") != null)
    and (.addrs | type == "array") and (.time > 1700000000000)' "$WORK/evjson.out" >/dev/null ||
    fail "peer_identification_completed lacks agent/protocols/addrs: $(cat "$WORK/evjson.out")"

# disconnect
dm dc disconnect "$B_ID" --data-dir "$A"
[ "$RC" = 0 ] && [ "$OUT" = "disconnected from $B_ID" ] || fail "disconnect: $RC $OUT $ERR"
wait_peers "$A" 0
wait_event "$WORK/evjson.out" ".type == \"peer_connectedness_changed\" and .peer == \"$B_ID\"
    and .connectedness == \"not_connected\"" "not_connected(B)"
dm dc disconnect "$B_ID" --data-dir "$A"
[ "$RC" = 1 ] && grep -q "not connected" <<<"$ERR" || fail "disconnect, not connected: $RC $ERR"
log "connect by multiaddr, peers, events, disconnect: ok"

# the other followers saw the same
wait_event "$WORK/evcurl.out" ".type == \"peer_connectedness_changed\" and .connectedness ==
    \"not_connected\"" "not_connected in the curl stream"
grep -Eq "peer_connectedness_changed +peer $B_ID +connected\$" "$WORK/evhuman.out" ||
    fail "human events: no connected line: $(cat "$WORK/evhuman.out")"
grep -Eq "peer_identification_completed +peer $B_ID +agent '[^']*dmsnet" "$WORK/evhuman.out" ||
    fail "human events: no identification line"
grep -Eq "peer_connectedness_changed +peer $B_ID +not_connected\$" "$WORK/evhuman.out" ||
    fail "human events: no not_connected line"
jq -e -s 'length >= 2 and all(.type == "peer_connectedness_changed")' "$WORK/evfilter.out" \
    >/dev/null || fail "--types filter: $(cat "$WORK/evfilter.out")"

# connect by bare peer id (the node knows B's address now)
dm co connect "$B_ID" --data-dir "$A"
[ "$RC" = 0 ] && [ "$OUT" = "connected to $B_ID" ] || fail "connect by peer id: $RC $OUT $ERR"
dm dc disconnect "$B_ID" --json --data-dir "$A"
jq -e --arg id "$B_ID" '.peer_id == $id and .disconnected == true' <<<"$OUT" >/dev/null ||
    fail "disconnect --json: $OUT"
wait_peers "$A" 0

# a dial that fails: exit 1 and the reason
dm co connect "/ip4/127.0.0.1/tcp/1/p2p/$B_ID" --data-dir "$A"
[ "$RC" = 1 ] && [ -n "$ERR" ] || fail "connect to a closed port: $RC $ERR"
log "connect by peer id; failed dial exits 1 ($ERR)"

# ---- the same with curl ----
api "$A" GET /v0/status
expect_code "GET /v0/status" 200
[ "$(jq -r .peer_id <<<"$OUT")" = "$A_ID" ] || fail "curl status: $OUT"
api "$A" POST /v0/connect "{\"addr\": \"$B_MA\"}"
expect_code "POST /v0/connect" 200
jq -e --arg id "$B_ID" '.peer_id == $id and .connected == true' <<<"$OUT" >/dev/null ||
    fail "curl connect: $OUT"
api "$A" POST /v0/ping "{\"peer\": \"$B_ID\", \"count\": 2, \"interval_ms\": 20}"
expect_code "POST /v0/ping" 200
jq -e --arg id "$B_ID" '.peer_id == $id and (.rtt_ms | length == 2 and all(. > 0))' \
    <<<"$OUT" >/dev/null || fail "curl ping: $OUT"
api "$A" POST /v0/ping "{\"peer\": \"$B_MA\", \"count\": 1}"
expect_code "POST /v0/ping by multiaddr" 200
api "$A" POST /v0/ping "{\"peer\": \"$B_ID\", \"count\": 101}"
expect_code "POST /v0/ping count 101" 400
api "$A" GET /v0/peers
expect_code "GET /v0/peers" 200
jq -e --arg id "$B_ID" '.peers[0].peer_id == $id' <<<"$OUT" >/dev/null || fail "curl peers: $OUT"
api "$A" POST /v0/disconnect "{\"peer_id\": \"$B_ID\"}"
expect_code "POST /v0/disconnect" 200
wait_peers "$A" 0
api "$A" POST /v0/disconnect "{\"peer_id\": \"$B_ID\"}"
expect_code "POST /v0/disconnect, not connected" 404
api "$A" POST /v0/disconnect '{"peer_id": "not-a-peer"}'
expect_code "POST /v0/disconnect, bad id" 400
api "$A" POST /v0/connect '{"addr": "/ip4/1.2.3.4/tcp/99999"}'
expect_code "POST /v0/connect, bad multiaddr" 400
api "$A" POST /v0/connect '{"addr": 5}'
expect_code "POST /v0/connect, addr not a string" 400
api "$A" POST /v0/connect "{\"addr\": \"/ip4/127.0.0.1/tcp/1/p2p/$B_ID\"}"
[ "$CODE" = 502 ] || [ "$CODE" = 504 ] || fail "POST /v0/connect to a closed port: $CODE $OUT"
expect_code "POST /v0/connect to a closed port" "$CODE"
api "$A" POST /v0/connect '{bad json'
expect_code "malformed JSON" 400
api "$A" GET /v0/nope
expect_code "unknown path" 404
api "$A" DELETE /v0/status
expect_code "wrong method" 405
head -c 100000 /dev/zero | tr '\0' 'a' >"$WORK/big.json"
api "$A" POST /v0/connect "@$WORK/big.json"
expect_code "oversized body" 413
api "$A" GET '/v0/events?types=bogus'
expect_code "events with an unknown type" 400
log "curl: status, connect, ping, peers, disconnect; 400/404/405/413 as JSON"

# ---- TCP and the token ----
TOKEN=$(cat "$A/api.token")
[ ${#TOKEN} = 64 ] || fail "the token is not 64 hex digits: $TOKEN"
tcp() { CODE=$(curl -sS --max-time 10 -o "$WORK/curl.out" -w '%{http_code}' "$@") || CODE=curl-failed; OUT=$(cat "$WORK/curl.out"); }
tcp "http://127.0.0.1:$A_PORT/v0/status"
expect_code "TCP without a token" 401
tcp -H "Authorization: Bearer $(printf '%064d' 0)" "http://127.0.0.1:$A_PORT/v0/status"
expect_code "TCP with a wrong token" 401
tcp -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$A_PORT/v0/status"
expect_code "TCP with the token" 200
[ "$(jq -r .peer_id <<<"$OUT")" = "$A_ID" ] || fail "TCP status: $OUT"
log "TCP: no token 401, wrong token 401, token 200"

# ---- config ----
dm cf config show --json --data-dir "$A"
[ "$RC" = 0 ] && [ -z "$ERR" ] || fail "config show: $RC $ERR"
jq -e '.log == "info" and .limits.max_conns == 4096' <<<"$OUT" >/dev/null ||
    fail "config show (defaults, --log info): $OUT"
api "$A" PUT /v0/config '{"bogus.key": 1}'
expect_code "PUT an unknown key" 400
grep -q bogus.key <<<"$OUT" || fail "the 400 does not name the key: $OUT"
api "$A" PUT /v0/config '{"limits.max_conns": 100, "limits.max_conns_per_peer": 0}'
expect_code "PUT a bad value" 400
grep -q max_conns_per_peer <<<"$OUT" || fail "the 400 does not name the key: $OUT"
api "$A" GET /v0/config
[ "$(jq .limits.max_conns <<<"$OUT")" = 4096 ] || fail "a refused PUT changed a key: $OUT"
dm cf config set limits.max_conns 777 --data-dir "$A"
[ "$RC" = 0 ] || fail "config set limits.max_conns 777: $RC $ERR"
dm cf config set channel.bootstrap "$B_MA" --json --data-dir "$A"
[ "$RC" = 0 ] && jq -e '(.applied + .restart_required) == ["channel.bootstrap"]' <<<"$OUT" \
    >/dev/null || fail "config set channel.bootstrap --json: $RC $OUT $ERR"
dm cf config set limits.max_conns abc --data-dir "$A"
[ "$RC" = 1 ] && grep -q "limits.max_conns" <<<"$ERR" || fail "config set bad value: $RC $ERR"
dm cf config set no.such 1 --data-dir "$A"
[ "$RC" = 1 ] || fail "config set unknown key: $RC $ERR"

stop_node A
# The followers end when their daemon stops: exit 1, saying so.
for ((i = 0; i < 50; i++)); do kill -0 "$EVJ_PID" 2>/dev/null || break; sleep 0.1; done
wait "$EVJ_PID"
rc=$?
forget_pid "$EVJ_PID"
[ $rc = 1 ] && grep -q "lost the connection to the daemon" "$WORK/evjson.err" ||
    fail "dmsnet events after the daemon stopped: exit $rc, $(cat "$WORK/evjson.err")"
dm cf config show --json --data-dir "$A"
[ "$RC" = 0 ] && grep -q "no daemon running" <<<"$ERR" || fail "config show, A stopped: $RC $ERR"
start_node A "$A"
dm cf config show --json --data-dir "$A"
[ "$RC" = 0 ] || fail "config show after restart: $RC $ERR"
jq -e --arg b "$B_MA" '.limits.max_conns == 777 and .channel.bootstrap == [$b]' <<<"$OUT" \
    >/dev/null || fail "config set did not survive the restart: $OUT"
dm cf config show --data-dir "$A"
grep -Eq '^limits\.max_conns +777$' <<<"$OUT" || fail "config show (human) after restart: $OUT"
# the bootstrap peer is dialled at start
wait_peers "$A" 1
dm cf config set limits.max_conns null --data-dir "$A"
[ "$RC" = 0 ] || fail "config set limits.max_conns null: $RC $ERR"
dm cf config set channel.bootstrap null --data-dir "$A"
[ "$RC" = 0 ] || fail "config set channel.bootstrap null: $RC $ERR"
stop_node A
start_node A "$A"
api "$A" GET /v0/config
jq -e '.limits.max_conns == 4096 and .channel.bootstrap == []' <<<"$OUT" >/dev/null ||
    fail "null did not reset the keys: $OUT"
log "config set survives a restart; null resets; bad keys and values refused"

# ---- an events client that never reads ----
# It asks for the stream on the unix socket and then reads nothing while A
# connects to and disconnects from B CYCLES times (3 events each): the
# daemon's socket buffer fills, then the stream's bounded queue, and the
# daemon drops the stream rather than hold more or wait. A second client
# that reads keeps up throughout.
STUCK=${DN_BUILD_DIR:-$DN_SOURCE_DIR/build}/bin/api_stuck_client
[ -x "$STUCK" ] || fail "api_stuck_client not built at $STUCK"
# The reading follower first: it must not inherit the fifo's write end (fd
# 8), or the stuck client would never see EOF on its stdin.
start_bg evlive "$DMSNET" events --json --types peer_connectedness_changed --data-dir "$A"
mkfifo "$WORK/stuck.in"
"$STUCK" "$A/api.sock" /v0/events <"$WORK/stuck.in" >"$WORK/stuck.out" 2>"$WORK/stuck.err" &
STUCK_PID=$!
register_pid "$STUCK_PID"
exec 8>"$WORK/stuck.in"
wait_for_line "$WORK/stuck.out" '^sent$' 10 "$STUCK_PID" >/dev/null ||
    fail "api_stuck_client did not connect"
sleep 0.5
# One curl for all the requests (curl -K), so the loop costs dials, not
# process starts.
: >"$WORK/cycles.curl"
for ((i = 1; i <= CYCLES; i++)); do
    for req in "connect|{\"addr\": \"$B_MA\"}" "disconnect|{\"peer_id\": \"$B_ID\"}"; do
        printf 'url = "http://localhost/v0/%s"\nunix-socket = "%s"\nrequest = "POST"\n' \
            "${req%%|*}" "$A/api.sock"
        printf 'header = "Content-Type: application/json"\ndata = "%s"\n' \
            "$(sed 's/"/\\"/g' <<<"${req#*|}")"
        printf 'output = "/dev/null"\nwrite-out = "%%{http_code}\\n"\nnext\n'
    done >>"$WORK/cycles.curl"
done
sed -i '$d' "$WORK/cycles.curl" # no "next" after the last request
rss0=$(rss_kb "$A_PID")
t0=$(date +%s%N)
curl -sS --max-time 300 -K "$WORK/cycles.curl" >"$WORK/cycles.out" 2>"$WORK/cycles.err" ||
    fail "the connect/disconnect rounds failed: $(tail -n 3 "$WORK/cycles.err")"
t1=$(date +%s%N)
ok=$(count_lines "$WORK/cycles.out" '^200$')
[ "$ok" = $((2 * CYCLES)) ] || fail "$ok of $((2 * CYCLES)) connect/disconnect requests answered 200"
worst=0
for ((i = 0; i < 20; i++)); do
    us=$(curl -sS --max-time 5 --unix-socket "$A/api.sock" -o /dev/null -w '%{time_total}' \
        http://localhost/v0/status | awk '{printf "%d", $1 * 1000000}') || fail "status did not answer"
    [ "$us" -gt "$worst" ] && worst=$us
done
rss1=$(rss_kb "$A_PID")
[ "$worst" -lt 1000000 ] || fail "status took $worst us with a stuck events client"
# A stream's queue is 256 KiB: without a sanitizer nothing explains more
# than a few MiB; ASan's quarantine and allocator caches add their share.
rss_max=16384
case "${DN_CC_FLAGS:-}" in *sanitize*) rss_max=65536 ;; esac
[ $((rss1 - rss0)) -lt $rss_max ] || fail "RSS grew from $rss0 to $rss1 KiB with a stuck events client"
# The reading follower kept up the whole time.
for ((i = 0; i < 50; i++)); do
    n=$(count_lines "$WORK/evlive.out" '"connectedness":"not_connected"')
    [ "$n" -ge "$CYCLES" ] && break
    sleep 0.1
done
[ "$n" -ge "$CYCLES" ] || fail "the reading events client saw $n of $CYCLES disconnects"
# Let the stuck client read now: what was queued, then the "dropped" line.
exec 8>&-
for ((i = 0; i < 100; i++)); do
    kill -0 "$STUCK_PID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$STUCK_PID" 2>/dev/null && fail "api_stuck_client did not finish reading in 10 s"
wait "$STUCK_PID"
forget_pid "$STUCK_PID"
got=$(count_lines "$WORK/stuck.out" '^\{"type":"peer_')
grep -q '^{"type":"dropped","error":' "$WORK/stuck.out" ||
    fail "the never-reading client was not dropped ($got events reached it; more CYCLES?)"
[ "$got" -lt $((3 * CYCLES)) ] || fail "the stuck client got all $got events: it was not dropped"
log "$CYCLES connect/disconnect rounds in $(((t1 - t0) / 1000000)) ms with a never-reading" \
    "client: dropped after $got of $((3 * CYCLES)) events; status worst $((worst / 1000)) ms;" \
    "RSS $rss0 -> $rss1 KiB; the reading client saw all $n disconnects"

stop_node A
stop_node B
[ ! -e "$A/api.sock" ] || fail "the daemon left $A/api.sock behind"
echo PASS
