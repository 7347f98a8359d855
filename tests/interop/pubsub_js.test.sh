#!/usr/bin/env bash
# gossipsub between dmsnet (tests/tools/pubsub_peer, the pubsub service) and js-libp2p 3.3.11
# with @libp2p/gossipsub 17.1.1 (js/gossip-peer.mjs):
#   1. C <-> js directly: messages published on each side arrive on the other, once, with the
#      author and seqno the publisher used;
#   2. C - js - C and 3. js - C - js: a message forwarded through an intermediate node of the
#      other implementation (the two ends are connected only to the middle one);
#   4. IHAVE/IWANT recovery, C gossips to js: C1 - C2 - js, where js runs with mesh degrees
#      0,0,0 (it grafts nobody and prunes C2's GRAFT, since C2 dialled it), so C2 forwards
#      nothing to js on a mesh; js gets the messages only after C2's IHAVE and its own IWANT;
#   5. IHAVE/IWANT recovery, js gossips to C: js1 - js2 - C, js2 with mesh 0,0,0 (it prunes C's
#      GRAFT): C gets the messages only through js2's IHAVE and C's IWANT.
# Publishers wait for a subscriber first (js throws on publish until it saw one). js's IP
# colocation penalty is off (every peer is on 127.0.0.1).
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_node
PUBSUB_PEER=${PUBSUB_PEER:-${DN_BUILD_DIR:-$DN_SOURCE_DIR/build}/bin/pubsub_peer}
GOSSIP_JS=$JS_DIR/gossip-peer.mjs
[ -x "$PUBSUB_PEER" ] || fail "pubsub_peer not built at $PUBSUB_PEER"
T=/dmsnet/interop/1

# start_c NAME ARGS... / start_j NAME ARGS...: start a peer, wait for its listening line, set
# MA, ID, OUT.
start_peer() {
    local name=$1 line
    shift
    start_bg "$name" "$@"
    OUT=$WORK/$name.out
    line=$(wait_for_line "$OUT" '"event":"listening"' 20 "$BG_PID") || fail "$name did not start"
    MA=$(printf '%s\n' "$line" | sed -n 's/.*"addrs":\["\([^"]*\)".*/\1/p')
    ID=$(printf '%s\n' "$line" | sed -n 's/.*"peerId":"\([^"]*\)".*/\1/p')
    [ -n "$MA" ] && [ -n "$ID" ] || fail "$name: bad listening line: $line"
}
start_c() { local n=$1; shift; start_peer "$n" "$PUBSUB_PEER" "$@"; }
start_j() { local n=$1; shift; start_peer "$n" "$NODE" "$GOSSIP_JS" "$@"; }

b64() { printf '%s' "$1" | base64; }

# expect_msgs FILE PREFIX N FROM [TIMEOUT]: FILE shows messages PREFIX-1..N from FROM, each once.
expect_msgs() {
    local file=$1 prefix=$2 n=$3 from=$4 timeout=${5:-15} i d c
    for ((i = 1; i <= n; i++)); do
        d=$(b64 "$prefix-$i")
        wait_for_line "$file" "\"event\":\"message\".*\"from\":\"$from\".*\"data\":\"$d\"" "$timeout" \
            >/dev/null || fail "${file##*/}: message $prefix-$i from $from did not arrive"
    done
    for ((i = 1; i <= n; i++)); do
        c=$(count_lines "$file" "\"event\":\"message\".*\"data\":\"$(b64 "$prefix-$i")\"")
        [ "$c" = 1 ] || fail "${file##*/}: message $prefix-$i delivered $c times"
    done
}

# no_mesh FILE: the peer never had a mesh peer for $T.
no_mesh() {
    [ "$(count_lines "$1" "\"event\":\"peers\",\"topic\":\"$T\",.*\"mesh\":[1-9]")" = 0 ] ||
        fail "${1##*/}: has mesh peers, the recovery would not be by gossip"
}

stop_all() {
    local p
    for p in "${_DN_PIDS[@]}"; do stop_pid "$p" >/dev/null 2>&1; done
}

N=5
# ---------- 1. C <-> js
log "1. C <-> js: $N messages each way"
start_c c1 --sub $T --pub $T --count $N --data c2js --pub-delay-ms 300
C_MA=$MA C_ID=$ID C_OUT=$OUT
start_j j1 --dial "$C_MA" --sub $T --pub $T --count $N --data js2c --pub-delay-ms 300
J_ID=$ID J_OUT=$OUT
expect_msgs "$J_OUT" c2js $N "$C_ID"
expect_msgs "$C_OUT" js2c $N "$J_ID"
s1=$(sed -n 's/.*"data":"'"$(b64 c2js-1)"'".*/&/p' "$J_OUT" | head -1 | sed -n 's/.*"seqno":"\([0-9]*\)".*/\1/p')
s2=$(sed -n 's/.*"data":"'"$(b64 c2js-2)"'".*/&/p' "$J_OUT" | head -1 | sed -n 's/.*"seqno":"\([0-9]*\)".*/\1/p')
[ -n "$s1" ] && [ "$s2" = "$((s1 + 1))" ] || fail "js saw seqnos '$s1' '$s2' for consecutive C messages"
stop_all

# ---------- 2. C - js - C
log "2. C - js - C: forwarded by js"
start_j jmid --sub $T
JM_MA=$MA JM_ID=$ID
start_c ca --dial "$JM_MA" --sub $T --pub $T --count $N --data ca --pub-delay-ms 2500
CA_ID=$ID
start_c cb --dial "$JM_MA" --sub $T
CB_OUT=$OUT
expect_msgs "$CB_OUT" ca $N "$CA_ID" 20
grep "\"data\":\"$(b64 ca-1)\"" "$CB_OUT" | grep -q "\"via\":\"$JM_ID\"" || fail "cb: ca-1 did not come via js"
expect_msgs "$WORK/jmid.out" ca $N "$CA_ID"
stop_all

# ---------- 3. js - C - js
log "3. js - C - js: forwarded by C"
start_c cmid --sub $T
CM_MA=$MA
start_j ja --dial "$CM_MA" --sub $T --pub $T --count $N --data ja --pub-delay-ms 2500
JA_ID=$ID
start_j jb --dial "$CM_MA" --sub $T
JB_OUT=$OUT
expect_msgs "$JB_OUT" ja $N "$JA_ID" 20
stop_all

# ---------- 4. IHAVE/IWANT: C gossips, js recovers
log "4. C1 - C2 - js(mesh 0,0,0): js recovers by IWANT after C2's IHAVE"
start_j jsink --sub $T --mesh 0,0,0
JS_MA2=$MA JS_OUT2=$OUT
start_c c2 --dial "$JS_MA2" --sub $T
C2_MA=$MA C2_OUT=$OUT
start_c cpub --dial "$C2_MA" --sub $T --pub $T --count 3 --data gossip-c --pub-delay-ms 2500
CP_ID=$ID
expect_msgs "$C2_OUT" gossip-c 3 "$CP_ID"
expect_msgs "$JS_OUT2" gossip-c 3 "$CP_ID" 20
no_mesh "$JS_OUT2"
# C2 knows both subscribers but meshes only with cpub (js pruned its GRAFT).
last=$(grep "\"event\":\"peers\"" "$C2_OUT" | tail -1)
case "$last" in *'"peers":2,"mesh":1'*) ;; *) fail "c2: expected 2 topic peers and 1 mesh peer, last: $last" ;; esac
stop_all

# ---------- 5. IHAVE/IWANT: js gossips, C recovers
log "5. js1 - js2(mesh 0,0,0) - C: C recovers by IWANT after js2's IHAVE"
start_j jmid0 --sub $T --mesh 0,0,0
J0_MA=$MA J0_OUT=$OUT
start_c csink --dial "$J0_MA" --sub $T
CS_OUT=$OUT
start_j jpub --dial "$J0_MA" --sub $T --pub $T --count 3 --data gossip-js --pub-delay-ms 2500
JP_ID=$ID
expect_msgs "$J0_OUT" gossip-js 3 "$JP_ID"
expect_msgs "$CS_OUT" gossip-js 3 "$JP_ID" 20
no_mesh "$J0_OUT"
last=$(grep "\"event\":\"peers\"" "$CS_OUT" | tail -1)
case "$last" in *'"mesh":0'*) ;; *) fail "csink: js2 should have pruned it, last: $last" ;; esac
stop_all
log "PASS"
