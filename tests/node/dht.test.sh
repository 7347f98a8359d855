#!/usr/bin/env bash
# The Kademlia DHT between daemons through the CLI (issue 10): five daemons on loopback in
# server mode (loopback is never "reachable" for AutoNAT, so auto mode would not serve), B, C
# and D bootstrapped from A. put/get across nodes (a signed /dmsnet/<own id>/<name> record and
# binary bytes through @FILE), a /dmsnet/ key of another peer refused, provide/findprovs (a
# CIDv0 and its CIDv1 name the same providers), findpeer, the routing table, `dmsnet send <peer
# id>` to a peer E never knew reached through the DHT, a restart without --bootstrap that gets
# the routing table and provider records back from the store and still finds a record put
# while it was down, a kill -9 during puts that leaves a store the daemon opens again, and
# auto mode: daemons serve once AutoNAT finds them reachable (autonat.allow_private lets it test
# loopback) and then admit each other although they were identified before they served.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../interop/lib.sh"

require_dmsnet
command -v jq >/dev/null 2>&1 || fail "jq is needed (scripts/setup.sh --test installs it)"

start() { # NAME [daemon args]: sets <NAME>_DIR, _MA, _ID, _PID, _LOG
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
    printf -v "${name}_PID" '%s' "$DMSNET_PID"
    printf -v "${name}_LOG" "%s" "$DMSNET_LOG"
}
dht() { # NODE ARGS...: dmsnet dht ARGS against NODE's daemon
    local dir_var="${1}_DIR"
    shift
    "$DMSNET" dht "$@" --data-dir "${!dir_var}"
}
table_size() { dht "$1" table --json 2>/dev/null | jq -r .size; }
wait_table() { # NODE N: wait until NODE's routing table holds at least N peers
    local i
    for ((i = 0; i < 100; i++)); do
        [ "$(table_size "$1")" -ge "$2" ] 2>/dev/null && return 0
        sleep 0.1
    done
    fail "$1's routing table has $(table_size "$1") peers, not $2: $(dht "$1" table 2>&1)"
}

start a
start b --bootstrap "$a_MA"
start c --bootstrap "$a_MA"
start d --bootstrap "$a_MA"
wait_table a 3
wait_table b 1
wait_table d 1

log "the routing table: bucket, peer id, age, stale"
dht a table >"$WORK/table.out" || fail "dht table"
head -1 "$WORK/table.out" | grep -q '^/dmsnet/kad/1.0.0, mode server (serving), [0-9]* peers$' ||
    fail "table header: $(head -1 "$WORK/table.out")"
for id in "$b_ID" "$c_ID" "$d_ID"; do
    grep -Eq "^[0-9]+ +$id +[0-9]+[smhd] +(no|yes)$" "$WORK/table.out" ||
        fail "A's table lacks $id: $(cat "$WORK/table.out")"
done
[ "$(dht a table --json | jq -r '.peers[0] | has("bucket") and has("age_ms") and has("stale")')" = true ] ||
    fail "table --json keys"

log "put on B, get on D: a signed /dmsnet/<B>/<name> record"
dht b put "/dmsnet/$b_ID/greeting" "hello from B" >"$WORK/put.out" 2>&1 || fail "put: $(cat "$WORK/put.out")"
grep -q "^stored /dmsnet/$b_ID/greeting with [1-9][0-9]* peers$" "$WORK/put.out" ||
    fail "put said: $(cat "$WORK/put.out")"
[ "$(dht d get "/dmsnet/$b_ID/greeting")" = "hello from B" ] || fail "D did not get B's record"
log "$(dht d get "/dmsnet/$b_ID/greeting" --json | jq -r '"get on D: \(.hops) hops, \(.asked) peers asked, \(.elapsed_ms) ms"')"
[ "$(dht c get "/dmsnet/$b_ID/greeting" --json | jq -r .value | base64 -d)" = "hello from B" ] ||
    fail "get --json"
log "binary bytes through @FILE, and a newer value replaces the older"
head -c 4096 /dev/urandom >"$WORK/blob"
dht b put "/dmsnet/$b_ID/greeting" @"$WORK/blob" >/dev/null || fail "put @FILE"
dht d get "/dmsnet/$b_ID/greeting" >"$WORK/blob.got" || fail "get blob"
cmp -s "$WORK/blob" "$WORK/blob.got" || fail "the 4 KiB value changed on the way (or the old one won)"
printf 'from stdin' | dht b put "/dmsnet/$b_ID/stdin" - >/dev/null || fail "put -"
[ "$(dht a get "/dmsnet/$b_ID/stdin")" = "from stdin" ] || fail "put - / get"

log "refusals: another peer's /dmsnet/ key, not found, usage, no daemon"
dht b put "/dmsnet/$c_ID/greeting" forged 2>"$WORK/forge.err" && fail "B wrote C's /dmsnet/ key"
grep -qF "only $c_ID can write /dmsnet/$c_ID/..." "$WORK/forge.err" ||
    fail "unclear refusal: $(cat "$WORK/forge.err")"
dht d get "/dmsnet/$c_ID/greeting" 2>/dev/null && fail "the forged record exists"
dht d get "/dmsnet/$b_ID/nothing-here" 2>"$WORK/nf.err"
[ $? = 1 ] || fail "not found: exit status"
grep -q "no record found for /dmsnet/$b_ID/nothing-here" "$WORK/nf.err" || fail "not found: $(cat "$WORK/nf.err")"
dht d get 2>/dev/null
[ $? = 2 ] || fail "usage error: exit status"
dht d put "/dmsnet/nope/x" y 2>"$WORK/bad.err" && fail "a /dmsnet/ key without a peer id was accepted"
grep -q 'not a peer id' "$WORK/bad.err" || fail "bad key: $(cat "$WORK/bad.err")"
"$DMSNET" dht table --data-dir "$WORK/none" 2>"$WORK/nod.err" && fail "no daemon: exit 0"
grep -qx "dmsnet dht: no daemon running at $WORK/none/api.sock" "$WORK/nod.err" ||
    fail "no daemon: $(cat "$WORK/nod.err")"

log "provide on C (CIDv0), findprovs on D (the same content as CIDv1)"
V0=QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n
V1=bafybeihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku
dht c provide "$V0" >"$WORK/prov.out" 2>&1 || fail "provide: $(cat "$WORK/prov.out")"
grep -q "^providing $V0 (announced to [1-9][0-9]* peers)$" "$WORK/prov.out" || fail "provide said: $(cat "$WORK/prov.out")"
dht d findprovs "$V1" >"$WORK/provs.out" || fail "findprovs"
grep -qx "$c_ID" "$WORK/provs.out" || fail "C is not among the providers: $(cat "$WORK/provs.out")"
dht d findprovs bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy 2>"$WORK/np.err"
[ $? = 1 ] || fail "no providers: exit status"
grep -q 'no providers found' "$WORK/np.err" || fail "no providers: $(cat "$WORK/np.err")"
dht d provide not-a-cid 2>"$WORK/cid.err" && fail "a bad CID was accepted"
grep -q "must be a CID" "$WORK/cid.err" || fail "bad cid: $(cat "$WORK/cid.err")"

log "findpeer: D asks for C"
dht d findpeer "$c_ID" >"$WORK/fp.out" || fail "findpeer"
log "$(dht d findpeer "$c_ID" --json | jq -r '"findpeer on D: \(.hops) hops, \(.elapsed_ms) ms"')"
grep -qx "${c_MA%/p2p/*}" "$WORK/fp.out" || fail "C's address ${c_MA%/p2p/*} not in: $(cat "$WORK/fp.out")"

log "send to a peer id E never knew: resolved through the DHT"
start e --bootstrap "$a_MA"
T=/dmsnet-test/dht/1.0.0
start_bg listen "$DMSNET" messages listen --type "$T" --data-dir "$c_DIR"
sleep 0.5
"$DMSNET" peers --json --data-dir "$e_DIR" | jq -e --arg id "$c_ID" '.[] | select(.peer_id == $id)' \
    >/dev/null 2>&1 && "$DMSNET" disconnect "$c_ID" --data-dir "$e_DIR" >/dev/null 2>&1
"$DMSNET" send "$c_ID" --type "$T" "via the DHT" --data-dir "$e_DIR" >"$WORK/send.out" 2>&1 ||
    fail "send through the DHT: $(cat "$WORK/send.out")"
wait_for_line "$WORK/listen.out" " $e_ID $T via the DHT\$" 5 >/dev/null || fail "C did not receive E's message"

log "a client-mode daemon queries but does not serve; connect by peer id"
start f --bootstrap "$a_MA" --dht-mode client
dht f table | head -1 | grep -q '^/dmsnet/kad/1.0.0, mode client (not serving), ' ||
    fail "client mode: $(dht f table | head -1)"
[ "$(dht f get "/dmsnet/$b_ID/stdin")" = "from stdin" ] || fail "a client cannot get"
dht a table --json | jq -e --arg id "$f_ID" '.peers[] | select(.peer_id == $id)' >/dev/null &&
    fail "A admitted a client to its routing table"
"$DMSNET" connect "$e_ID" --data-dir "$f_DIR" >"$WORK/conn.out" 2>&1 || fail "connect <peer id>: $(cat "$WORK/conn.out")"
"$DMSNET" peers --json --data-dir "$f_DIR" | grep -q "$e_ID" || fail "F is not connected to E"

log "another prefix is another DHT; auto mode does not serve on loopback"
start h --bootstrap "$a_MA" --dht-prefix /nunet --dht-mode auto
dht h table | head -1 | grep -q '^/nunet/kad/1.0.0, mode auto (not serving), 0 peers$' ||
    fail "/nunet: $(dht h table | head -1)"
dht h get "/dmsnet/$b_ID/stdin" 2>/dev/null && fail "a /nunet node found a /dmsnet record"
dht a table --json | jq -e --arg id "$h_ID" '.peers[] | select(.peer_id == $id)' >/dev/null &&
    fail "A admitted a /nunet node"
dht d findpeer "$d_ID" 2>"$WORK/self.err" && fail "findpeer of ourselves"
grep -q "own peer id" "$WORK/self.err" || fail "self: $(cat "$WORK/self.err")"

log "restart B without --bootstrap: table and providers from the store; a record put meanwhile"
stop_pid "$b_PID" || fail "B did not stop cleanly"
dht d put "/dmsnet/$d_ID/late" "put while B was down" >/dev/null || fail "put while B down"
b_old_ID=$b_ID
start b
[ "$b_ID" = "$b_old_ID" ] || fail "B came back with another identity"
grep -Eq 'restored [1-9][0-9]* routing table peers, [1-9][0-9]* provider records' "$b_LOG" ||
    fail "B restored nothing: $(grep -i restored "$b_LOG")"
wait_table b 1
[ "$(dht b get "/dmsnet/$d_ID/late")" = "put while B was down" ] || fail "B cannot find the new record"
dht b findprovs "$V0" | grep -qx "$c_ID" || fail "B lost C's provider record"

log "kill -9 during puts leaves a store that opens"
(for ((i = 0; i < 400; i++)); do dht d put "/dmsnet/$d_ID/k$i" "value $i" >/dev/null 2>&1 || true; done) &
putter=$!
register_pid "$putter"
sleep 1.5
kill -9 "$d_PID"
wait "$d_PID" 2>/dev/null
forget_pid "$d_PID"
kill "$putter" 2>/dev/null
wait "$putter" 2>/dev/null
forget_pid "$putter"
"$DMSNET" config show --data-dir "$d_DIR" >/dev/null 2>"$WORK/cfg.err" || fail "the store does not open: $(cat "$WORK/cfg.err")"
start d
wait_table d 1
[ "$(dht d get "/dmsnet/$b_ID/stdin")" = "from stdin" ] || fail "D after kill -9 cannot get a record"

log "auto mode: serving once AutoNAT says reachable (loopback allowed here), tables fill after"
for n in p q r; do
    mkdir -p "$WORK/$n"
    echo '{"autonat": {"allow_private": true, "confidence": 1}}' >"$WORK/$n/config.json"
done
start p --dht-mode auto
start q --dht-mode auto --bootstrap "$p_MA"
start r --dht-mode auto --bootstrap "$p_MA"
for ((i = 0; i < 200; i++)); do
    [ "$(dht p table --json | jq -r '.serving and .size == 2')" = true ] && break
    sleep 0.1
done
[ "$(dht p table --json | jq -r .serving)" = true ] || fail "auto mode never served: $(grep reachab "$WORK/p.log")"
[ "$(table_size p)" = 2 ] || fail "peers that started serving after identify are not in P's table: $(dht p table)"
dht r put "/dmsnet/$r_ID/auto" "auto mode" >/dev/null || fail "put in auto mode"
[ "$(dht q get "/dmsnet/$r_ID/auto")" = "auto mode" ] || fail "get in auto mode"
echo ok
