# shellcheck shell=bash
# Helpers for the network-namespace tests (tests/netns/*.test.sh). Source it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Namespaces and interfaces get names unique to this run (the shell's pid and a random tag), so
# tests may run in parallel. The EXIT trap (also on failure, SIGINT and SIGTERM) stops every
# process started with netns_spawn, deletes every namespace made with netns_new (which takes their
# veth pairs with them) and removes the scratch directory $WORK (kept with KEEP_WORK=1).
#
# These tests need root (namespaces, veth pairs, nftables). CI runs as root, so without it they
# FAIL rather than skip: a skipped NAT test would pass CI having checked nothing.

DN_SOURCE_DIR=${DN_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
DN_BUILD_DIR=${DN_BUILD_DIR:-$DN_SOURCE_DIR/build}
DMSNET=${DMSNET:-$DN_BUILD_DIR/bin/dmsnet}

# d<pid in hex><2 random hex>: with a 3-character suffix an interface name stays within
# Linux's 15 characters (IFNAMSIZ - 1).
NETNS_TAG=$(printf 'd%x%02x' $$ $((RANDOM % 256)))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dn-netns.XXXXXX") || {
    echo "FAIL: mktemp" >&2
    exit 1
}
_NETNS_LIST=()
_NETNS_PIDS=()

log() { echo "# $*"; }

dump_logs() {
    local f
    for f in "$WORK"/*.log "$WORK"/*.out; do
        [ -s "$f" ] || continue
        echo "----- ${f##*/} (last 20 lines)" >&2
        tail -n 20 "$f" >&2
    done
}

fail() {
    echo "FAIL: $*" >&2
    dump_logs
    exit 1
}

# Root and the tools, or fail saying what is missing.
netns_require() {
    [ "$(id -u)" = 0 ] || fail "netns tests need root (network namespaces, veth, nftables); CI runs as root"
    local t
    for t in ip nft "$@"; do
        command -v "$t" >/dev/null 2>&1 ||
            fail "'$t' is missing: install the test packages with scripts/setup.sh --test"
    done
}

# The unique name of interface (or namespace) NAME: netns_name NAME.
netns_name() { echo "$NETNS_TAG$1"; }

# netns_new VAR NAME: create namespace $(netns_name NAME) with lo up and put its name in VAR
# (not a command substitution: the namespace must be registered in this shell for the cleanup).
netns_new() {
    local ns
    ns=$(netns_name "$2")
    ip netns add "$ns" || fail "ip netns add $ns"
    _NETNS_LIST+=("$ns")
    ip -n "$ns" link set lo up || fail "lo up in $ns"
    printf -v "$1" '%s' "$ns"
}

# netns_veth NS1 IF1 NS2 IF2: a veth pair, end $(netns_name IF1) in NS1 and $(netns_name IF2) in
# NS2, both up.
netns_veth() {
    local a b
    a=$(netns_name "$2")
    b=$(netns_name "$4")
    ip link add "$a" netns "$1" type veth peer name "$b" netns "$3" || fail "veth $a-$b"
    ip -n "$1" link set "$a" up && ip -n "$3" link set "$b" up || fail "veth up $a-$b"
}

# netns_spawn NS LOG CMD...: run CMD in NS in the background (stdout and stderr to LOG); the
# cleanup stops it. Sets NETNS_PID.
netns_spawn() {
    local ns=$1 out=$2
    shift 2
    ip netns exec "$ns" "$@" >"$out" 2>&1 &
    NETNS_PID=$!
    _NETNS_PIDS+=("$NETNS_PID")
}

# wait_line FILE REGEX SECONDS: until FILE has a line matching REGEX (extended), or fail.
wait_line() {
    local i
    for ((i = 0; i < $3 * 20; i++)); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "no line matching '$2' in ${1##*/} after $3 s"
}

# nat_topology NPEERS: the NAT scene both NAT tests use (namespaces prv, rtr, pub in $prv,
# $rtr, $pub):
#   prv 192.168.77.2 --- 192.168.77.1 rtr 203.0.113.2 --- 203.0.113.1 pub
# with 10.<k>.0.1/32 (k = 1..NPEERS) on pub's lo, one /16 per public peer. $ru is the router's
# public interface, the one set_nat masquerades on; PUBLIC_IP the router's public address.
PUBLIC_IP=203.0.113.2
nat_topology() {
    local k pv rp up
    netns_new prv prv
    netns_new rtr rtr
    netns_new pub pub
    netns_veth "$prv" pv "$rtr" rp
    netns_veth "$rtr" ru "$pub" up
    pv=$(netns_name pv) rp=$(netns_name rp) ru=$(netns_name ru) up=$(netns_name up)
    ip -n "$prv" addr add 192.168.77.2/24 dev "$pv"
    ip -n "$prv" route add default via 192.168.77.1
    ip -n "$rtr" addr add 192.168.77.1/24 dev "$rp"
    ip -n "$rtr" addr add $PUBLIC_IP/24 dev "$ru"
    ip -n "$rtr" route add default via 203.0.113.1
    ip netns exec "$rtr" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$pub" addr add 203.0.113.1/24 dev "$up"
    for ((k = 1; k <= $1; k++)); do
        ip -n "$pub" addr add 10.$k.0.1/32 dev lo
    done
}

# set_nat FLAGS: the router masquerades on $ru with FLAGS ("", random, fully-random).
set_nat() {
    ip netns exec "$rtr" nft flush ruleset
    ip netns exec "$rtr" nft -f - <<EOF || fail "nft: masquerade $1"
table ip dnnat {
    chain post {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "$ru" masquerade $1
    }
}
EOF
}

_netns_cleanup() {
    local rc=$? pid i ns
    trap - EXIT INT TERM
    # Everything below must run whatever fails (a process already gone, say).
    set +e
    for pid in "${_NETNS_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${_NETNS_PIDS[@]}"; do
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    # Deleting a namespace takes its interfaces (the veth pairs) with it.
    for ns in "${_NETNS_LIST[@]}"; do
        ip netns del "$ns" 2>/dev/null
    done
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        echo "# kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap _netns_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
