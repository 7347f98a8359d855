#!/usr/bin/env bash
# The node behind a real NAT sees itself as it is (issue 9: "a node behind a namespace NAT made
# with nftables masquerade sees itself as private", and the NAT device type from observed
# addresses), through the daemon's own surface: `dmsnet events --json` and `dmsnet status --json`.
#
#   prv 192.168.77.2 --- 192.168.77.1 rtr 203.0.113.2 --- 203.0.113.1 pub
#   node A                     nftables masquerade          9 dmsnet daemons on 10.<k>.0.1:4001
#                                                           + node C on 10.20.0.1 (no NAT)
#
# The nine public daemons are A's peers (it connects to them) and its AutoNAT v2 servers (each in its own
# /16, so each is a distinct observer). A dials them from its listen port (port reuse):
#   1. masquerade (port-preserving): every peer sees 203.0.113.2:P -> nat_type cone, that
#      address confirmed (observed_addrs, local_addresses_updated); the servers cannot dial A
#      back (no port forward, no route to 192.168.77.0/24) -> reachability private.
#   2. masquerade random: each peer sees another port -> nat_type symmetric; still private.
#   3. C, in the public namespace with the same bootstrap peers: reachability public.
# The addresses here are private or documentation ranges, so every node sets
# autonat.allow_private in its config.json.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NPEERS=9
netns_require jq
[ -x "$DMSNET" ] || fail "no dmsnet binary at $DMSNET"

nat_topology $NPEERS
ip -n "$pub" addr add 10.20.0.1/32 dev lo

# new_dir NAME: a data dir whose config.json allows AutoNAT on private addresses.
new_dir() {
    mkdir -p "$WORK/$1"
    echo '{"autonat": {"allow_private": true}}' >"$WORK/$1/config.json"
}

log "starting $NPEERS public daemons (AutoNAT servers)"
boot=()
for ((k = 1; k <= NPEERS; k++)); do
    new_dir "d$k"
    netns_spawn "$pub" "$WORK/daemon$k.log" "$DMSNET" daemon --listen /ip4/10.$k.0.1/tcp/4001 \
        --data-dir "$WORK/d$k" --log warn
done
for ((k = 1; k <= NPEERS; k++)); do
    wait_line "$WORK/daemon$k.log" '^listening on /ip4/' 10
    boot+=("$(sed -nE 's/^listening on (\/ip4\/.*)$/\1/p' "$WORK/daemon$k.log" | head -n 1)")
done

# start_node NAME NS PORT: a node with an event follower, then told to connect to the nine
# (`dmsnet connect`: outbound dials, from the listen port). The follower subscribes before the
# first dial, so it sees every event the dials cause.
start_node() {
    local name=$1 ns=$2 port=$3 ma
    new_dir "$name"
    # A restarted node's old log holds "api listening" too; the new daemon's
    # shell opens the log only after the fork, so it must be gone first.
    rm -f "$WORK/$name.log"
    netns_spawn "$ns" "$WORK/$name.log" "$DMSNET" daemon --listen /ip4/0.0.0.0/tcp/"$port" \
        --data-dir "$WORK/$name"
    wait_line "$WORK/$name.log" '^api listening on unix:' 10
    # The API is a unix socket in the data dir: the CLI reaches it from outside the namespace.
    "$DMSNET" events --json --data-dir "$WORK/$name" >"$WORK/$name.events.out" 2>&1 &
    _NETNS_PIDS+=("$!")
    sleep 1 # the follower's subscription (a local socket) before the first dial
    for ma in "${boot[@]}"; do
        "$DMSNET" connect --data-dir "$WORK/$name" "$ma" >/dev/null || fail "$name: connect $ma"
    done
}

# wait_status NAME JQ-EXPR SECONDS: until `dmsnet status --json` satisfies the expression.
wait_status() {
    local i
    for ((i = 0; i < $3 * 4; i++)); do
        "$DMSNET" status --json --data-dir "$WORK/$1" >"$WORK/$1.status.out" 2>&1 &&
            jq -e "$2" "$WORK/$1.status.out" >/dev/null && return 0
        sleep 0.25
    done
    fail "$1: status never had $2: $(cat "$WORK/$1.status.out")"
}

# has_event NAME JQ-SELECT: the node's event stream holds a matching line.
has_event() {
    jq -e -s "map(select($2)) | length > 0" "$WORK/$1.events.out" >/dev/null ||
        fail "$1: no event $2 in: $(cat "$WORK/$1.events.out")"
}

log "1. A behind a port-preserving masquerade"
set_nat ""
start_node a "$prv" 4201
wait_status a '.reachability == "private" and .nat_type == "cone"' 30
jq -e --arg a "/ip4/$PUBLIC_IP/tcp/4201" '.observed_addrs | index($a) != null' \
    "$WORK/a.status.out" >/dev/null || fail "a: $PUBLIC_IP:4201 not confirmed: $(cat "$WORK/a.status.out")"
jq -e '[.peers[] | select(.direction == "outbound")] | length == 9' "$WORK/a.status.out" \
    >/dev/null || fail "a: not connected out to the nine: $(cat "$WORK/a.status.out")"
has_event a '.type == "local_reachability_changed" and .reachability == "private"'
has_event a '.type == "nat_device_type_changed" and .nat_type == "cone"'
has_event a ".type == \"local_addresses_updated\" and (.addrs | index(\"/ip4/$PUBLIC_IP/tcp/4201\") != null)"
has_event a '.type == "peer_connectedness_changed" and .connectedness == "connected"'
has_event a '.type == "peer_identification_completed"'

log "2. A behind masquerade random"
kill -TERM "${_NETNS_PIDS[@]: -2}" 2>/dev/null || true
wait "${_NETNS_PIDS[@]: -2}" 2>/dev/null || true
set_nat random
rm -rf "$WORK/a"
start_node a "$prv" 4202
wait_status a '.reachability == "private" and .nat_type == "symmetric"' 30
jq -e '.observed_addrs | length == 0' "$WORK/a.status.out" >/dev/null ||
    fail "a: an address was confirmed behind a symmetric NAT: $(cat "$WORK/a.status.out")"
has_event a '.type == "nat_device_type_changed" and .nat_type == "symmetric"'

log "3. C without a NAT"
start_node c "$pub" 4203
wait_status c '.reachability == "public"' 30
has_event c '.type == "local_reachability_changed" and .reachability == "public"'

echo PASS
