#!/usr/bin/env bash
# AutoNAT v2 against js-libp2p's @libp2p/autonat-v2 2.0.15, in both roles.
#
# js-libp2p's AutoNAT refuses loopback and private addresses on both sides, with no option to
# allow them (server: isPrivateIp -> no answer; client: isPrivate -> never asks), so the peers
# run in two network namespaces joined by a veth pair, with public-looking addresses that never
# leave them: 11.201.X.1 (js) and 11.201.X.2 (dmsnet), plus 12.201.X.2 (dmsnet) and
# 12.202.X.1 / 12.203.X.1 (js) as second addresses on the veths, reachable only where a route
# is added. Both namespaces are removed at exit, also on failure.
#
#   js server, dmsnet client (tests/tools/autonat_peer):
#     public    we listen on 0.0.0.0; js dials back 11.201.X.2 -> verdict public, that address
#               reachable (loopback is never a candidate);
#     private   we listen only on 12.201.X.2, which js cannot route to; it asks for dial data
#               first (another IP than our connection's); and 11.201.X.2 (the IP js observes)
#               with our port is closed -> both fail, verdict private, nothing reachable;
#     dial data the same with a route: js takes our dial data, dials 12.201.X.2 -> public.
#   dmsnet server, js client (js/autonat-peer.mjs):
#     same IP   js listens on 11.201.X.1 and dials us: we dial back, js marks it verified;
#     dial data js listens on 12.202.X.1 (routed): we ask for dial data, get it, dial back,
#               js marks it verified;
#     no route  js listens on 12.203.X.1 (not routed): our dial fails, js does not verify it.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_node
TOOL=${AUTONAT_PEER:-$(dirname "$DMSNET")/autonat_peer}
[ -x "$TOOL" ] || fail "autonat_peer not found at $TOOL (set AUTONAT_PEER)"
AUTONAT_JS=$JS_DIR/autonat-peer.mjs
[ "$(id -u)" = 0 ] || fail "needs root for network namespaces"
command -v ip >/dev/null || fail "needs ip (iproute2)"

ID=$$
X=$((ID % 200 + 20))
NSJ=dn-anj-$ID NSC=dn-anc-$ID
VJ=anj$ID VC=anc$ID
J1=11.201.$X.1 C1=11.201.$X.2 C2=12.201.$X.2 J2=12.202.$X.1 J3=12.203.$X.1

on_exit() {
    local rc=$? pid
    # processes first: a namespace with a process inside outlives `ip netns del`
    for pid in "${_DN_PIDS[@]}"; do stop_pid "$pid" >/dev/null 2>&1; done
    ip netns del "$NSJ" 2>/dev/null
    ip netns del "$NSC" 2>/dev/null
    (exit $rc)
    cleanup
}
trap on_exit EXIT

ip netns add "$NSJ" && ip netns add "$NSC" || fail "cannot create network namespaces"
ip link add "$VJ" netns "$NSJ" type veth peer name "$VC" netns "$NSC" || fail "cannot create veth"
for ns in "$NSJ" "$NSC"; do ip -n "$ns" link set lo up; done
ip -n "$NSJ" addr add "$J1/24" dev "$VJ"
ip -n "$NSJ" addr add "$J2/32" dev "$VJ"
ip -n "$NSJ" addr add "$J3/32" dev "$VJ"
ip -n "$NSC" addr add "$C1/24" dev "$VC"
ip -n "$NSC" addr add "$C2/32" dev "$VC"
ip -n "$NSJ" link set "$VJ" up
ip -n "$NSC" link set "$VC" up
# dmsnet reaches js's second address; js reaches dmsnet's only in the dial-data case (below)
ip -n "$NSC" route add "$J2/32" via "$J1" || fail "cannot add routes"

# start_js NAME ARGS...: the js AutoNAT node in its namespace; sets JSA_PID, JSA_OUT, JSA_MA.
start_js() {
    local name=$1 line
    shift
    start_bg "$name" ip netns exec "$NSJ" "$NODE" "$AUTONAT_JS" "$@"
    JSA_PID=$BG_PID JSA_OUT=$WORK/$name.out
    line=$(wait_for_line "$JSA_OUT" '"event":"listening"' 20 "$JSA_PID") || fail "js '$name' did not start"
    JSA_MA=$(printf '%s\n' "$line" | sed -n 's/.*"addrs":\["\([^"]*\)".*/\1/p')/p2p/$(
        printf '%s\n' "$line" | sed -n 's/.*"peerId":"\([^"]*\)".*/\1/p')
}

# client NAME ARGS...: our AutoNAT client in its namespace, dialling the js node; fails the
# test unless it exits 0 (the --until verdict reached).
client() {
    local name=$1
    shift
    timeout -k 5 60 ip netns exec "$NSC" "$TOOL" --dial "$JSA_MA" --no-server --confidence 1 \
        --seconds 30 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || fail "$name: no verdict (exit $?)"
}

# counter FILE KEY: a counter from autonat_peer's stats line.
counter() { sed -n "s/^stats .*\b$2=\([0-9]*\).*/\1/p" "$1"; }

# ---------- js server, dmsnet client
start_js js-server --listen "/ip4/$J1/tcp/0" --timeout 300
JS_SERVER_PID=$JSA_PID

log "public: we listen on 0.0.0.0, js dials back $C1"
client c-public --listen /ip4/0.0.0.0/tcp/0 --until public
grep -q "^reachability public$" "$WORK/c-public.out" || fail "c-public: no public verdict"
grep -Eq "^reachable /ip4/$C1/tcp/[0-9]+$" "$WORK/c-public.out" || fail "c-public: $C1 not reachable"
grep -q "^reachable /ip4/127\." "$WORK/c-public.out" && fail "c-public: loopback was tested"
[ "$(counter "$WORK/c-public.out" probe_ok)" -ge 1 ] || fail "c-public: no successful probe"
[ "$(counter "$WORK/c-public.out" bad_dial_backs)" = 0 ] || fail "c-public: bad dial-backs"

log "private: we listen only on $C2, which js cannot reach"
client c-private --listen "/ip4/$C2/tcp/0" --until private --min-failed 2
grep -q "^reachability private$" "$WORK/c-private.out" || fail "c-private: no private verdict"
grep -q "^reachable " "$WORK/c-private.out" && fail "c-private: an address was reachable"
[ "$(counter "$WORK/c-private.out" probe_failed)" -ge 2 ] ||
    fail "c-private: not both addresses ($C2 and the observed $C1) failed"
[ "$(counter "$WORK/c-private.out" probe_ok)" = 0 ] || fail "c-private: a probe succeeded"
# js asked for dial data (our address's IP is not our connection's), and we paid 30k-100k
sent=$(counter "$WORK/c-private.out" dial_data_sent)
[ "$sent" -ge 30000 ] && [ "$sent" -le $((100000 + 4096)) ] || fail "c-private: dial data sent: $sent"

log "dial data: with a route to $C2, js takes our dial data and dials it back"
ip -n "$NSJ" route add "$C2/32" via "$C1" || fail "cannot add the route to $C2"
client c-data --listen "/ip4/$C2/tcp/0" --until public
grep -Eq "^reachable /ip4/$C2/tcp/[0-9]+$" "$WORK/c-data.out" || fail "c-data: $C2 not reachable"
sent=$(counter "$WORK/c-data.out" dial_data_sent)
[ "$sent" -ge 30000 ] && [ "$sent" -le $((100000 + 4096)) ] || fail "c-data: dial data sent: $sent"
port=$(sed -n "s|^reachable /ip4/$C2/tcp/\([0-9]*\)$|\1|p" "$WORK/c-data.out")
grep -q "\"connection:open\",\"remote\":\"/ip4/$C2/tcp/$port/p2p/.*\"direction\":\"outbound\"" \
    "$JSA_OUT" || fail "js did not dial back $C2:$port on a new connection"
ip -n "$NSJ" route del "$C2/32" via "$C1"
stop_pid "$JS_SERVER_PID" || fail "js server did not exit 0"

# ---------- dmsnet server, js client
start_bg c-server ip netns exec "$NSC" "$TOOL" --listen /ip4/0.0.0.0/tcp/0 --no-client --seconds 120
S_PID=$BG_PID S_OUT=$WORK/c-server.out
line=$(wait_for_line "$S_OUT" '^listening on ' 10 "$S_PID") || fail "our server did not start"
S_PORT=$(printf '%s\n' "$line" | sed -n 's|.*/tcp/\([0-9]*\)/p2p/.*|\1|p')
S_ID=${line##*/p2p/}
S_MA=/ip4/$C1/tcp/$S_PORT/p2p/$S_ID

log "js client on $J1 (same IP as its connection): we dial it back"
start_js js-same --listen "/ip4/$J1/tcp/0" --dial "$S_MA" --timeout 60
wait_for_line "$JSA_OUT" "\"event\":\"verified\",\"addr\":\"/ip4/$J1/tcp/" 20 "$JSA_PID" >/dev/null ||
    fail "js did not verify $J1 through our server"
stop_pid "$JSA_PID" || fail "js-same did not exit 0"

log "js client on $J2 (another IP): we ask for dial data, then dial it back"
start_js js-data --listen "/ip4/$J2/tcp/0" --dial "$S_MA" --timeout 60
wait_for_line "$JSA_OUT" "\"event\":\"verified\",\"addr\":\"/ip4/$J2/tcp/" 20 "$JSA_PID" >/dev/null ||
    fail "js did not verify $J2 through our server"
stop_pid "$JSA_PID" || fail "js-data did not exit 0"

log "js client on $J3 (no route from us): our dial fails, js verifies nothing"
start_js js-noroute --listen "/ip4/$J3/tcp/0" --dial "$S_MA" --timeout 60
wait_for_line "$JSA_OUT" '"event":"peer:identify"' 20 "$JSA_PID" >/dev/null || fail "js-noroute: no identify"
sleep 3
grep -q '"event":"verified"' "$JSA_OUT" && fail "js verified $J3, which we cannot dial"
stop_pid "$JSA_PID" || fail "js-noroute did not exit 0"

stop_pid "$S_PID" || fail "our server did not exit 0"
[ "$(counter "$S_OUT" requests)" -ge 3 ] || fail "server: fewer than 3 requests"
[ "$(counter "$S_OUT" dial_backs_ok)" -ge 2 ] || fail "server: fewer than 2 dial-backs"
[ "$(counter "$S_OUT" dial_data_asked)" -ge 2 ] || fail "server: dial data asked fewer than 2 times"
[ "$(counter "$S_OUT" dial_data_bytes)" -ge 60000 ] || fail "server: too little dial data"
[ "$(counter "$S_OUT" dial_errors)" -ge 1 ] || fail "server: the unroutable dial did not fail"
echo "PASS"
