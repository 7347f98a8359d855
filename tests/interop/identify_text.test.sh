#!/usr/bin/env bash
# Peer-supplied text is printed escaped (issue 8): a peer whose identify agentVersion holds a
# newline, a forged "protocol:" line, terminal escape sequences and a BEL
# (tests/tools/agent_peer.c) must not add lines to `dmsnet identify`'s output or to the
# daemon's log, and no control byte may reach either; the text stays readable as \xNN.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_dmsnet
AGENT_PEER=${AGENT_PEER:-$(dirname "$DMSNET")/agent_peer}
[ -x "$AGENT_PEER" ] || fail "agent_peer not found at $AGENT_PEER (set AGENT_PEER)"

agent=$'evil/1.0\nprotocol: /forged/1.0.0\e[2J\e]0;owned\a'
escaped='evil/1.0\x0aprotocol: /forged/1.0.0\x1b[2J\x1b]0;owned\x07'

# true when the file holds a control byte other than the line ends
has_control() { LC_ALL=C grep -q $'[\x01-\x09\x0b-\x1f\x7f]' "$1"; }

log "dmsnet identify against a peer with a hostile agent"
start_bg evil "$AGENT_PEER" "$agent" --seconds 60
line=$(wait_for_line "$WORK/evil.out" '^listening on ' 20 "$BG_PID") || fail "agent_peer did not start"
EVIL_MA=${line#listening on }
"$DMSNET" identify "$EVIL_MA" >"$WORK/id.out" 2>"$WORK/id.err" || fail "identify failed: $(cat "$WORK/id.err")"
grep -qxF "agent: $escaped" "$WORK/id.out" || fail "agent not printed escaped: $(cat -v "$WORK/id.out")"
[ "$(grep -c '^agent: ' "$WORK/id.out")" = 1 ] || fail "more than one agent line"
grep -q '^protocol: /forged' "$WORK/id.out" && fail "the peer forged a protocol line"
has_control "$WORK/id.out" && fail "a control byte reached identify's output: $(cat -v "$WORK/id.out")"
grep -q '^protocol: /ipfs/ping/1.0.0$' "$WORK/id.out" || fail "honest fields are missing"

log "the daemon's log line for the same peer"
start_dmsnet_daemon d --listen /ip4/127.0.0.1/tcp/0 --data-dir "$WORK/d"
start_bg evil2 "$AGENT_PEER" "$agent" --dial "$DMSNET_MA" --seconds 60
wait_for_line "$DMSNET_LOG" "identified .*: agent '" 20 "$DMSNET_PID" >/dev/null ||
    fail "the daemon did not identify the peer: $(cat -v "$DMSNET_LOG")"
grep -qF "agent '$escaped'" "$DMSNET_LOG" || fail "agent not logged escaped: $(cat -v "$DMSNET_LOG")"
grep -q '^protocol: /forged' "$DMSNET_LOG" && fail "the peer forged a log line"
has_control "$DMSNET_LOG" && fail "a control byte reached the daemon log: $(cat -v "$DMSNET_LOG")"
log "ok"
