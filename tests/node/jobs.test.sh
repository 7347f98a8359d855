#!/usr/bin/env bash
# publishJob (issue 10): a requester and 10 bidders on loopback (started in parallel, each
# bootstrapping from the requester), every bidder with `--auto-bid FILE` of its own.
# `dmsnet job publish job.json --wait 5 --json` prints 10 bids, one from each bidder with its
# file's bytes, within the deadline, then a summary line. `job requests` on a bidder shows
# the request; a bid after the deadline (`job bid`) is refused by the requester with a clear
# error, as are a bid on an unknown request and a second bid from one bidder.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../interop/lib.sh"

require_dmsnet
command -v jq >/dev/null 2>&1 || fail "jq is needed (scripts/setup.sh --test installs it)"
N=10
JT=/dmsnet/jobs/1.0.0

mkdir -p "$WORK/r"
start_dmsnet_daemon r --data-dir "$WORK/r" --listen /ip4/127.0.0.1/tcp/0 --log warn
r_MA=$DMSNET_MA
r_ID=$DMSNET_PEER_ID
wait_for_line "$WORK/r.log" "^api listening on unix:" 10 "$DMSNET_PID" >/dev/null || fail "r: no api line"

log "$N bidders, started at once"
buf=()
command -v stdbuf >/dev/null 2>&1 && buf=(stdbuf -oL -eL)
pids=()
for ((i = 1; i <= N; i++)); do
    mkdir -p "$WORK/b$i"
    printf 'bid %d: 4 cores, price %d\x1b[0m\n' "$i" "$((100 + i))" >"$WORK/bid$i"
    "${buf[@]}" "$DMSNET" daemon --data-dir "$WORK/b$i" --listen /ip4/127.0.0.1/tcp/0 --log warn \
        --bootstrap "$r_MA" --auto-bid "$WORK/bid$i" >"$WORK/b$i.log" 2>&1 &
    pids[i]=$!
    register_pid "${pids[i]}"
done
mkdir -p "$WORK/m" # a bidder by hand (no --auto-bid)
"${buf[@]}" "$DMSNET" daemon --data-dir "$WORK/m" --listen /ip4/127.0.0.1/tcp/0 --log warn \
    --bootstrap "$r_MA" >"$WORK/m.log" 2>&1 &
m_PID=$!
register_pid "$m_PID"
declare -A want # bidder peer id -> its bid file
for ((i = 1; i <= N; i++)); do
    line=$(wait_for_line "$WORK/b$i.log" '^listening on ' 20 "${pids[i]}") || fail "b$i did not start"
    id=${line##*/p2p/}
    want[$id]=$WORK/bid$i
    printf -v "b${i}_ID" '%s' "$id"
    wait_for_line "$WORK/b$i.log" "^api listening on unix:" 10 "${pids[i]}" >/dev/null || fail "b$i: no api line"
done

line=$(wait_for_line "$WORK/m.log" '^listening on ' 20 "$m_PID") || fail "m did not start"
m_ID=${line##*/p2p/}
wait_for_line "$WORK/m.log" "^api listening on unix:" 10 "$m_PID" >/dev/null || fail "m: no api line"

# Every bidder announced its subscription to the jobs topic to the requester.
for ((i = 0; i < 200; i++)); do
    n=$("$DMSNET" pubsub peers "$JT" --data-dir "$WORK/r" 2>/dev/null | wc -l)
    [ "$n" -ge $((N + 1)) ] && break
    sleep 0.1
done
[ "$n" -ge $((N + 1)) ] || fail "the requester sees $n of $((N + 1)) nodes on $JT"

start_bg reqsj "$DMSNET" job requests --json --data-dir "$WORK/b1"
sleep 0.3 # the stream is up before the request comes
log "the requester publishes a job and collects bids for 5 s"
printf '{"image":"alpine","cpu":4}\n' >"$WORK/job.json"
t0=$(date +%s%N)
"$DMSNET" job publish "$WORK/job.json" --wait 5 --json --data-dir "$WORK/r" >"$WORK/pub.out" 2>"$WORK/pub.err" ||
    fail "job publish: $(cat "$WORK/pub.err")"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -ge 4900 ] && [ "$ms" -lt 8000 ] || fail "job publish --wait 5 took $ms ms"
[ "$(jq -s 'map(select(.from)) | length' "$WORK/pub.out")" = "$N" ] ||
    fail "expected $N bids: $(cat "$WORK/pub.out")"
[ "$(jq -r 'select(.from) | .from' "$WORK/pub.out" | sort -u | wc -l)" = "$N" ] ||
    fail "the bids do not come from $N distinct bidders"
req=$(jq -r 'select(.from) | .request' "$WORK/pub.out" | sort -u)
[[ $req =~ ^[0-9a-f]{32}$ ]] || fail "the bids name other requests: $req"
while read -r from b64; do
    f=${want[$from]:-}
    [ -n "$f" ] || fail "a bid from $from, which is no bidder"
    printf '%s' "$b64" | base64 -d | cmp -s - "$f" || fail "the bid from $from is not its file's bytes"
done < <(jq -r 'select(.from) | "\(.from) \(.bid)"' "$WORK/pub.out")
tail -1 "$WORK/pub.out" | jq -e --arg r "$req" --argjson n "$N" '.done == true and .bids == $n and .request == $r' \
    >/dev/null || fail "no summary line: $(tail -1 "$WORK/pub.out")"
jq -se 'map(select(.from)) | all(.time > 0)' "$WORK/pub.out" >/dev/null || fail "bids without a time"

log "job requests on a bidder shows the request (as it came, --json; and afterwards)"
start_bg reqs "$DMSNET" job requests --data-dir "$WORK/b1"
wait_for_line "$WORK/reqsj.out" "\"id\":\"$req\"" 5 >/dev/null || fail "job requests --json: $(cat "$WORK/reqsj.out" "$WORK/reqsj.err")"
jq -e --arg r "$r_ID" '.from == $r and (.deadline > 0)' "$WORK/reqsj.out" >/dev/null ||
    fail "the request's requester or deadline: $(cat "$WORK/reqsj.out")"
# The request went out at its deadline - 5 s: how long the bids took (printed, not judged).
sent=$(($(head -1 "$WORK/reqsj.out" | jq .deadline) - 5000))
last=$(jq -s 'map(select(.from) | .time) | max' "$WORK/pub.out")
log "$N bids within $((last - sent)) ms of the request"
[ $((last - sent)) -lt 5000 ] || fail "a bid arrived after the deadline"
[ "$(head -1 "$WORK/reqsj.out" | jq -r .job | base64 -d)" = "$(cat "$WORK/job.json")" ] ||
    fail "the request's job is not job.json"
wait_for_line "$WORK/reqs.out" "^$req $r_ID \\{\"image\":\"alpine\",\"cpu\":4\\}\\\\x0a\$" 5 >/dev/null ||
    fail "job requests: $(cat -v "$WORK/reqs.out")"
grep -q 'price' "$WORK/pub.out" && fail "--json printed bids raw"

log "a bid after the deadline, on an unknown request, and a bid on our own request are refused"
printf 'too late\n' >"$WORK/late"
"$DMSNET" job bid "$req" "$WORK/late" --data-dir "$WORK/b2" >"$WORK/late.out" 2>"$WORK/late.err" &&
    fail "a late bid was accepted: $(cat "$WORK/late.out")"
grep -q "refused the bid: request $req is closed: its deadline passed" "$WORK/late.err" ||
    fail "late bid, unclear: $(cat "$WORK/late.err")"
"$DMSNET" job bid 0123456789abcdef0123456789abcdef "$WORK/late" --data-dir "$WORK/b2" 2>"$WORK/unk.err" &&
    fail "a bid on an unknown request was accepted"
grep -q 'no job request 0123456789abcdef0123456789abcdef was received here' "$WORK/unk.err" ||
    fail "unknown request, unclear: $(cat "$WORK/unk.err")"
"$DMSNET" job bid "$req" "$WORK/late" --data-dir "$WORK/r" 2>"$WORK/own.err" && fail "the requester bid on its own request"

log "during a request: a second bid from a bidder is refused, a bid by hand is accepted"
printf '{"image":"busybox"}' >"$WORK/job2.json"
start_bg pub2 "$DMSNET" job publish "$WORK/job2.json" --wait 4 --data-dir "$WORK/r"
pub2_PID=$BG_PID
for ((i = 0; i < 50; i++)); do
    [ "$(count_lines "$WORK/reqsj.out" '"id"')" -ge 2 ] && break
    sleep 0.1
done
line=$(grep -v "\"id\":\"$req\"" "$WORK/reqsj.out" | head -1)
req2=$(jq -r .id <<<"$line")
[[ $req2 =~ ^[0-9a-f]{32}$ ]] || fail "second request id: $line"
for ((i = 0; i < 50; i++)); do
    [ "$(count_lines "$WORK/pub2.out" "^$b3_ID ")" = 1 ] && break
    sleep 0.1
done
"$DMSNET" job bid "$req2" "$WORK/late" --data-dir "$WORK/b3" 2>"$WORK/twice.err" && fail "a second bid was accepted"
grep -q 'already bid' "$WORK/twice.err" || fail "second bid, unclear: $(cat "$WORK/twice.err")"
printf 'by hand\n' >"$WORK/hand"
"$DMSNET" job bid "$req2" "$WORK/hand" --data-dir "$WORK/m" >"$WORK/hand.out" 2>&1 ||
    fail "a bid by hand was refused: $(cat "$WORK/hand.out")"
grep -qx "bid accepted by $r_ID" "$WORK/hand.out" || fail "bid by hand printed: $(cat "$WORK/hand.out")"
wait "$pub2_PID" || fail "the second publish failed: $(cat "$WORK/pub2.err")"
forget_pid "$pub2_PID"
[ "$(wc -l <"$WORK/pub2.out")" = $((N + 1)) ] || fail "second request: $(cat "$WORK/pub2.out")"
grep -qxF "$m_ID by hand\\x0a" "$WORK/pub2.out" || fail "the bid by hand is missing: $(cat "$WORK/pub2.out")"
grep -qxF "$b3_ID bid 3: 4 cores, price 103\\x1b[0m\\x0a" "$WORK/pub2.out" ||
    fail "human bid lines (escaped): $(cat -v "$WORK/pub2.out")"
grep -qx "$((N + 1)) bids for request $req2" "$WORK/pub2.err" || fail "no summary on stderr: $(cat "$WORK/pub2.err")"
LC_ALL=C grep -q $'\x1b' "$WORK/pub2.out" && fail "a control byte reached the requester's output"

log "junk on the jobs topic is no request: nobody shows it, every node stays up"
before=$(count_lines "$WORK/reqsj.out" '"id"')
"$DMSNET" pubsub pub "$JT" 'not a job request' --data-dir "$WORK/m" >/dev/null || fail "pub junk"
sleep 1
[ "$(count_lines "$WORK/reqsj.out" '"id"')" = "$before" ] || fail "junk shown as a request: $(tail -n 1 "$WORK/reqsj.out")"
for ((i = 1; i <= N; i++)); do kill -0 "${pids[i]}" 2>/dev/null || fail "b$i died"; done
"$DMSNET" status --data-dir "$WORK/r" >/dev/null || fail "the requester stopped answering"

"$DMSNET" job publish "$WORK/job.json" --data-dir "$WORK/none" 2>"$WORK/nod.err" && fail "no daemon: exit 0"
grep -qx "dmsnet job: no daemon running at $WORK/none/api.sock" "$WORK/nod.err" || fail "no daemon: $(cat "$WORK/nod.err")"
echo ok
