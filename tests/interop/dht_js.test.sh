#!/usr/bin/env bash
# The Kademlia DHT against js-libp2p (@libp2p/kad-dht 16.4.5, libp2p 3.3.11) on
# /dmsnet/kad/1.0.0, both directions (issue 10):
#   - js gets dmsnet's records: a signed /dmsnet/<id>/<name> record (js holds it with a
#     validator that accepts it) and a /pk/ record js validates itself; dmsnet gets js's /pk/
#     record;
#   - js finds dmsnet as a provider and dmsnet finds js (a CIDv0 and the CIDv1 of the same
#     multihash are one provider key);
#   - peer routing across mixed chains whose ends are not connected: js -> dmsnet -> js
#     (the far js peer never looks itself up, so only the dmsnet node in the middle knows it)
#     and dmsnet -> js -> dmsnet (both dmsnet ends only `connect` to the js peer, no bootstrap);
#   - the same DHT on another prefix (--dht-prefix /nunet, js protocol /nunet/kad/1.0.0).
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_node
require_dmsnet
command -v jq >/dev/null 2>&1 || fail "jq is needed (scripts/setup.sh --test installs it)"
[ -d "$JS_DIR/node_modules/@libp2p/kad-dht" ] || fail "@libp2p/kad-dht is not installed in $JS_DIR"
KAD_JS=$JS_DIR/kad-peer.mjs

start_m() { # NAME [daemon args]: a dmsnet DHT server; sets <NAME>_DIR, _MA, _ID
    local name=$1 dir="$WORK/$1"
    shift
    mkdir -p "$dir"
    start_dmsnet_daemon "$name" --data-dir "$dir" --listen /ip4/127.0.0.1/tcp/0 --log info \
        --dht-mode server "$@"
    wait_for_line "$DMSNET_LOG" "^api listening on unix:" 10 "$DMSNET_PID" >/dev/null ||
        fail "$name: no api line"
    printf -v "${name}_DIR" '%s' "$dir"
    printf -v "${name}_MA" '%s' "$DMSNET_MA"
    printf -v "${name}_ID" '%s' "$DMSNET_PEER_ID"
}
dm() { # NODE ARGS...: dmsnet ARGS against NODE's daemon
    local v="${1}_DIR"
    shift
    "$DMSNET" "$@" --data-dir "${!v}"
}
table_has() { dm "$1" dht table --json 2>/dev/null | jq -e --arg id "$2" '.peers[] | select(.peer_id == $id)' >/dev/null; }
wait_in_table() { # NODE PEER
    local i
    for ((i = 0; i < 150; i++)); do
        table_has "$1" "$2" && return 0
        sleep 0.1
    done
    fail "$2 never entered $1's routing table: $(dm "$1" dht table 2>&1)"
}

start_j() { # NAME [kad-peer.mjs args]: js node reading commands from a FIFO; sets <NAME>_ID, _MA, _FD
    local name=$1 line fd
    shift
    mkfifo "$WORK/$name.in"
    # Read-write: opening it does not wait for the other end (Linux FIFOs).
    exec {fd}<>"$WORK/$name.in"
    # Not start_bg: a background command's stdin is /dev/null unless it redirects its own.
    "$NODE" "$KAD_JS" "$@" <&"$fd" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    BG_PID=$!
    register_pid "$BG_PID"
    printf -v "${name}_FD" '%s' "$fd"
    line=$(wait_for_line "$WORK/$name.out" '"event":"listening"' 20 "$BG_PID") || fail "js $name did not start"
    printf -v "${name}_ID" '%s' "$(jq -r .peerId <<<"$line")"
    printf -v "${name}_MA" '%s/p2p/%s' "$(jq -r '.addrs[0]' <<<"$line")" "$(jq -r .peerId <<<"$line")"
}
# js NAME JSON: run one command on js node NAME, print its result line; fails on timeout.
js() {
    local name=$1 cmd=$2 op fdv="${1}_FD" before i line
    op=$(jq -r .op <<<"$cmd")
    before=$(count_lines "$WORK/$name.out" "\"event\":\"$op\"")
    printf '%s\n' "$cmd" >&"${!fdv}"
    for ((i = 0; i < 450; i++)); do
        if [ "$(count_lines "$WORK/$name.out" "\"event\":\"$op\"")" -gt "$before" ]; then
            grep -E "\"event\":\"$op\"" "$WORK/$name.out" | tail -1
            return 0
        fi
        sleep 0.1
    done
    fail "js $name: no answer to $cmd"
}
js_ok() { # NAME JSON: js, and fail unless ok (use as line=$(js_ok ...) || exit 1)
    local line
    line=$(js "$1" "$2") || exit 1
    [ "$(jq -r .ok <<<"$line")" = true ] || fail "js $1: $2 -> $line"
    printf '%s\n' "$line"
}

start_m m
start_j j1 --dial "$m_MA"
js_ok j1 '{"op":"wait_table","n":1}' >/dev/null
wait_in_table m "$j1_ID"

log "dmsnet -> js: a signed /dmsnet/ record and a /pk/ record"
dm m dht put "/dmsnet/$m_ID/hello" "from dmsnet" >/dev/null || fail "dmsnet put /dmsnet/"
line=$(js_ok j1 "{\"op\":\"get\",\"key\":\"/dmsnet/$m_ID/hello\"}") || exit 1
jq -r .value <<<"$line" | base64 -d | grep -aq 'from dmsnet' || fail "js got another value: $line"
pk=$(js_ok j1 '{"op":"pk"}') || exit 1
pk_key=$(jq -r .key <<<"$pk")
jq -r .value <<<"$pk" | base64 -d >"$WORK/pk1"
dm m dht put "$pk_key" @"$WORK/pk1" >"$WORK/pkput.out" 2>&1 || fail "dmsnet put $pk_key: $(cat "$WORK/pkput.out")"
grep -q 'with [1-9][0-9]* peers' "$WORK/pkput.out" || fail "js did not store the /pk/ record: $(cat "$WORK/pkput.out")"
line=$(js_ok j1 "{\"op\":\"get\",\"key\":\"$pk_key\"}") || exit 1
[ "$(jq -r .value <<<"$line")" = "$(jq -r .value <<<"$pk")" ] || fail "js got another /pk/ value: $line"
log "a /pk/ record whose key does not match is refused"
head -c 36 /dev/urandom >"$WORK/junk"
dm m dht put "$pk_key" @"$WORK/junk" 2>/dev/null && fail "dmsnet accepted a /pk/ value that does not hash to its key"

log "js -> dmsnet: a /pk/ record"
pk=$(js_ok j1 '{"op":"pk"}') || exit 1
pk_key=$(jq -r .key <<<"$pk")
js_ok j1 "{\"op\":\"put\",\"key\":\"$pk_key\",\"value\":\"$(jq -r .value <<<"$pk")\"}" >/dev/null
dm m dht get "$pk_key" >"$WORK/pk2.got" || fail "dmsnet get $pk_key"
[ "$(base64 -w0 <"$WORK/pk2.got")" = "$(jq -r .value <<<"$pk")" ] || fail "dmsnet got another /pk/ value"

log "providers both ways"
c1=$(js_ok j1 '{"op":"cid","data":"provided by js"}' | jq -r .cid)
js_ok j1 "{\"op\":\"provide\",\"cid\":\"$c1\"}" >/dev/null
dm m dht findprovs "$c1" >"$WORK/provs1" || fail "dmsnet findprovs $c1"
grep -qx "$j1_ID" "$WORK/provs1" || fail "dmsnet did not find js as a provider: $(cat "$WORK/provs1")"
line=$(js_ok j1 '{"op":"cid","data":"provided by dmsnet"}') || exit 1
dm m dht provide "$(jq -r .v0 <<<"$line")" >/dev/null || fail "dmsnet provide (CIDv0)"
line=$(js_ok j1 "{\"op\":\"findprovs\",\"cid\":\"$(jq -r .cid <<<"$line")\"}") || exit 1
jq -e --arg id "$m_ID" '.providers | index($id)' <<<"$line" >/dev/null ||
    fail "js did not find dmsnet as a provider: $line"

log "peer routing js -> dmsnet -> js (the ends not connected)"
start_j j2 --dial "$m_MA" --no-self-query
wait_in_table m "$j2_ID"
js_ok j1 '{"op":"peers"}' | jq -e --arg id "$j2_ID" '.peers | index($id) | not' >/dev/null ||
    fail "the js ends are connected already"
line=$(js_ok j1 "{\"op\":\"findpeer\",\"peer\":\"$j2_ID\"}") || exit 1
jq -e --arg a "${j2_MA%/p2p/*}" '.addrs | index($a)' <<<"$line" >/dev/null ||
    fail "js found other addresses for js: $line (want ${j2_MA%/p2p/*})"
[ "$(jq -r .local <<<"$line")" = false ] || fail "js knew the far js peer without asking: $line"

log "peer routing dmsnet -> js -> dmsnet (the ends not connected)"
start_m m2
start_m m3
dm m2 connect "$j1_MA" >/dev/null || fail "m2 connect js"
dm m3 connect "$j1_MA" >/dev/null || fail "m3 connect js"
wait_in_table m2 "$j1_ID"
js_ok j1 "{\"op\":\"wait_peer\",\"peer\":\"$m3_ID\"}" >/dev/null
dm m2 peers --json | jq -e --arg id "$m3_ID" '.. | strings | select(. == $id)' >/dev/null &&
    fail "the dmsnet ends are connected already"
dm m2 dht findpeer "$m3_ID" >"$WORK/fp.out" 2>&1 || fail "dmsnet findpeer through js: $(cat "$WORK/fp.out")"
grep -qx "${m3_MA%/p2p/*}" "$WORK/fp.out" || fail "m3's address ${m3_MA%/p2p/*} not in: $(cat "$WORK/fp.out")"

log "another prefix (/nunet/kad/1.0.0, as NuNet DMS): js and dmsnet on it"
start_m n --dht-prefix /nunet
start_j j3 --dial "$n_MA" --protocol /nunet/kad/1.0.0
js_ok j3 '{"op":"wait_table","n":1}' >/dev/null
wait_in_table n "$j3_ID"
dm n dht put "/dmsnet/$n_ID/job" "on nunet" >/dev/null || fail "put on /nunet"
line=$(js_ok j3 "{\"op\":\"get\",\"key\":\"/dmsnet/$n_ID/job\"}") || exit 1
jq -r .value <<<"$line" | base64 -d | grep -aq 'on nunet' || fail "js on /nunet got: $line"
dm n dht table | head -1 | grep -q '^/nunet/kad/1.0.0, ' || fail "the table does not say /nunet"
echo ok
