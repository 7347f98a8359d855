#!/usr/bin/env bash
# Observed addresses behind a real NAT (issue 9: "NAT device type changed", and the port reuse
# that makes observed addresses mean something).
#
#   prv 192.168.77.2 --- 192.168.77.1 rtr 203.0.113.2 --- 203.0.113.1 pub
#                              nftables masquerade          9 dmsnet daemons on 10.<k>.0.1:4001
#
# Each public daemon sits in its own /16, so each is a distinct observer for natobs. In prv,
# tests/tools/natobs_probe listens on port P, dials all nine, and prints what each reported as
# our address (identify's observedAddr) plus the verdict of src/node/natobs.c with its default
# rules (4 observers to confirm, 9 reports before a NAT verdict):
#   1. masquerade (keeps ports), port reuse: every peer sees 203.0.113.2:P, natobs says cone
#      and confirms that address.
#   2. masquerade random, port reuse: the dials still leave from P, but each peer sees another
#      port: natobs says symmetric and confirms nothing.
#   3. masquerade fully-random: the same.
#   4. masquerade, --no-port-reuse: each dial leaves from an ephemeral port (which the NAT
#      keeps); natobs ignores reports on local addresses we do not listen on: no verdict.
# Each case uses its own P so no conntrack entry of an earlier case is reused.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROBE=$DN_BUILD_DIR/bin/natobs_probe
NPEERS=9
netns_require
[ -x "$DMSNET" ] || fail "no dmsnet binary at $DMSNET"
[ -x "$PROBE" ] || fail "no natobs_probe at $PROBE"

nat_topology $NPEERS

log "starting $NPEERS public daemons"
addrs=()
for ((k = 1; k <= NPEERS; k++)); do
    mkdir -p "$WORK/d$k"
    netns_spawn "$pub" "$WORK/daemon$k.log" "$DMSNET" daemon --listen /ip4/10.$k.0.1/tcp/4001 \
        --data-dir "$WORK/d$k" --log warn
done
for ((k = 1; k <= NPEERS; k++)); do
    wait_line "$WORK/daemon$k.log" '^listening on /ip4/' 10
    addrs+=("$(sed -nE 's/^listening on (\/ip4\/.*)$/\1/p' "$WORK/daemon$k.log" | head -n 1)")
done

# probe CASE PORT [--no-port-reuse]: run the probe from prv; its output in $WORK/CASE.out.
probe() {
    local name=$1 port=$2
    shift 2
    ip netns exec "$prv" "$PROBE" --listen /ip4/0.0.0.0/tcp/"$port" --seconds 10 "$@" \
        "${addrs[@]}" >"$WORK/$name.out" 2>"$WORK/$name.log" ||
        fail "$name: natobs_probe failed"
    [ "$(grep -c '^peer ' "$WORK/$name.out")" = $NPEERS ] || fail "$name: not $NPEERS peers"
}
# Fields of the peer lines: local port, observed IP, observed port, natobs rc.
peer_fields() {
    sed -nE 's|^peer [0-9]+ local /ip4/[0-9.]+/tcp/([0-9]+) observed /ip4/([0-9.]+)/tcp/([0-9]+) natobs (-?[0-9]+)$|\1 \2 \3 \4|p' \
        "$WORK/$1.out"
}
expect_nat() {
    grep -qx "nat $2" "$WORK/$1.out" || fail "$1: natobs verdict is not $2: $(grep '^nat' "$WORK/$1.out")"
}
# check_random CASE PORT: reports of a NAT that gives each destination its own port.
check_random() {
    local name=$1 port=$2
    [ "$(peer_fields "$name" | awk -v p="$port" '$1 == p && $4 == 0' | wc -l)" = $NPEERS ] ||
        fail "$name: the dials did not all leave from port $port"
    peer_fields "$name" | awk -v ip=$PUBLIC_IP '$2 != ip {exit 1}' || fail "$name: wrong observed IP"
    # Nine ports drawn at random: two may meet by chance, more would be no chance.
    local distinct
    distinct=$(peer_fields "$name" | awk '{print $3}' | sort -u | wc -l)
    [ "$distinct" -ge $((NPEERS - 1)) ] || fail "$name: only $distinct distinct observed ports"
    expect_nat "$name" symmetric
    ! grep -q '^confirmed' "$WORK/$name.out" || fail "$name: an address was confirmed"
}

log "1. masquerade (port-preserving), port reuse"
set_nat ""
probe cone 4101
[ "$(peer_fields cone | awk -v ip=$PUBLIC_IP '$1 == 4101 && $2 == ip && $3 == 4101 && $4 == 0' |
    wc -l)" = $NPEERS ] || fail "cone: not every peer saw $PUBLIC_IP:4101 from port 4101"
expect_nat cone cone
grep -qx "confirmed /ip4/$PUBLIC_IP/tcp/4101" "$WORK/cone.out" || fail "cone: address not confirmed"

log "2. masquerade random, port reuse"
set_nat random
probe random 4102
check_random random 4102

log "3. masquerade fully-random, port reuse"
set_nat fully-random
probe fully 4103
check_random fully 4103

log "4. masquerade, no port reuse"
set_nat ""
probe noreuse 4104 --no-port-reuse
# The NAT keeps the ephemeral port each dial left from; natobs refuses them all (DN_ENOTFOUND:
# not a listen address), so it has no verdict.
[ "$(peer_fields noreuse | awk '$1 != 4104 && $1 == $3 && $4 == -1017' | wc -l)" = $NPEERS ] ||
    fail "noreuse: expected ephemeral local ports, kept by the NAT, refused by natobs"
expect_nat noreuse unknown

echo PASS
