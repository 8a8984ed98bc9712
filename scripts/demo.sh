#!/usr/bin/env bash
# make demo: start a local agent on loopback with a simulated GPU and a fresh control
# token, open the sparkdeck dashboard on it, and stop the agent when the dashboard exits.
# Usage: scripts/demo.sh [BIN] [DEMO_DIR] [PORT] [SIMULATE]
set -euo pipefail
BIN=${1:-.venv/bin} DIR=${2:-.state/demo} PORT=${3:-8611} SIM=${4:-gb10}
mkdir -p "$DIR"
export SPARKDECK_STATE_DIR="$DIR"
"$BIN/sparkdeck-agent" token revoke demo >/dev/null 2>&1 || true
TOKEN=$("$BIN/sparkdeck-agent" token add demo --scope control | tail -n 1)
"$BIN/sparkdeck-agent" serve --host 127.0.0.1 --port "$PORT" --simulate "$SIM" >"$DIR/agent.log" 2>&1 &
AGENT=$!
trap 'kill $AGENT 2>/dev/null; wait $AGENT 2>/dev/null || true' EXIT INT TERM HUP
up=""
for _ in $(seq 100); do
  if ! kill -0 "$AGENT" 2>/dev/null; then break; fi
  if "$BIN/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" "http://127.0.0.1:$PORT/api/v1/health" 2>/dev/null; then up=1; break; fi
  sleep 0.2
done
if [ -z "$up" ]; then
  echo "the demo agent did not start; its log ($DIR/agent.log):" >&2
  tail -n 20 "$DIR/agent.log" >&2
  exit 1
fi
echo "agent on http://127.0.0.1:$PORT (simulated $SIM, log in $DIR/agent.log)"
# The token goes through the environment, not argv, so `ps` does not show it.
SPARKDECK_TOKEN="$TOKEN" "$BIN/sparkdeck" "http://127.0.0.1:$PORT"
