#!/usr/bin/env bash
# The daemon's events when a js-libp2p peer connects, identifies and
# disconnects (issue 9: "events observed when a js-libp2p peer connects,
# identifies and disconnects"). `dmsnet events --json` must show
# peer_connectedness_changed connected, peer_identification_completed with
# the js agent and protocols, then not_connected; `dmsnet events` (human)
# the same with the peer's agent escaped: the js agent carries an ESC byte,
# which must reach the JSON as is and never the terminal.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_dmsnet
require_node
command -v jq >/dev/null 2>&1 || fail "jq is needed (scripts/setup.sh --test installs it)"

D=$WORK/d
start_dmsnet_daemon d --listen /ip4/127.0.0.1/tcp/0 --data-dir "$D"
D_MA=$DMSNET_MA
wait_for_line "$DMSNET_LOG" "^api listening on unix:$D/api.sock\$" 10 "$DMSNET_PID" >/dev/null ||
    fail "the daemon serves no API socket"

start_bg evjson "$DMSNET" events --json --data-dir "$D"
start_bg evhuman "$DMSNET" events --data-dir "$D"
sleep 1 # the streams must be open before the js peer connects

AGENT=$(printf 'js-events/1.0 \033[31mred')
run_js js --dial "$D_MA" --identify --agent "$AGENT" --hold 1 ||
    fail "the js peer could not dial and identify the daemon"
JS_ID=$(js_get "$WORK/js.out" dialing peerId) || fail "the js peer printed no id"

# wait_json FILTER WHAT: until a line of evjson.out matches the jq FILTER
wait_json() {
    local i
    for ((i = 0; i < 100; i++)); do
        jq -e -s --arg id "$JS_ID" "map(select($1)) | length > 0" "$WORK/evjson.out" \
            >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "no $2 event for the js peer in dmsnet events --json"
}
wait_json '.type == "peer_connectedness_changed" and .peer == $id and .connectedness == "connected"' \
    connected
wait_json '.type == "peer_identification_completed" and .peer == $id' identification
wait_json '.type == "peer_connectedness_changed" and .peer == $id and .connectedness == "not_connected"' \
    not_connected

# In order: connected, identified, not connected; all with a time.
order=$(jq -r -s --arg id "$JS_ID" 'map(select(.peer == $id)) | map(.type + ":" +
    (.connectedness // "-")) | join(" ")' "$WORK/evjson.out")
[ "$order" = "peer_connectedness_changed:connected peer_identification_completed:- peer_connectedness_changed:not_connected" ] ||
    fail "events for the js peer out of order or repeated: $order"
jq -e -s --arg id "$JS_ID" --arg agent "$AGENT" 'map(select(.peer == $id and
    .type == "peer_identification_completed")) | .[0] | .agent == $agent
    and (.protocols | index("/ipfs/ping/1.0.0") != null and index("/ipfs/id/1.0.0") != null)
    and (.addrs | type == "array") and (.time | type == "number")' "$WORK/evjson.out" >/dev/null ||
    fail "peer_identification_completed does not carry the js agent and protocols: $(cat "$WORK/evjson.out")"
log "events --json: connected, identified (agent and protocols), not_connected for $JS_ID"

# Human form: one line each, the agent's ESC shown as \x1b.
for i in $(seq 50); do
    [ "$(count_lines "$WORK/evhuman.out" "peer $JS_ID")" -ge 3 ] && break
    sleep 0.1
done
grep -Eq "peer_connectedness_changed +peer $JS_ID +connected\$" "$WORK/evhuman.out" ||
    fail "human events: no connected line"
grep -Fq "peer $JS_ID  agent 'js-events/1.0 \\x1b[31mred'" "$WORK/evhuman.out" ||
    fail "human events: the agent is missing or not escaped: $(cat "$WORK/evhuman.out")"
grep -Eq "peer_connectedness_changed +peer $JS_ID +not_connected\$" "$WORK/evhuman.out" ||
    fail "human events: no not_connected line"
if grep -q $'\033' "$WORK/evhuman.out"; then
    fail "human events printed a raw ESC byte from the peer's agent"
fi
log "events (human): one line per event, the peer's agent escaped"

stop_pid "$DMSNET_PID" || fail "the daemon did not exit 0 on SIGTERM"
echo PASS
