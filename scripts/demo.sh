#!/usr/bin/env bash
# make demo: start a local agent on loopback with a simulated GB10 and a fresh token, then watch it.
set -euo pipefail
BIN=${1:-.venv/bin} DIR=${2:-.state/demo} PORT=${3:-8611} SIM=${4:-gb10}
mkdir -p "$DIR"
export SPARKDECK_STATE_DIR="$DIR"
"$BIN/sparkdeck-agent" token revoke demo >/dev/null 2>&1 || true
TOKEN=$("$BIN/sparkdeck-agent" token add demo --scope control | tail -n 1)
"$BIN/sparkdeck-agent" serve --port "$PORT" --simulate "$SIM" >"$DIR/agent.log" 2>&1 &
AGENT=$!
trap 'kill $AGENT 2>/dev/null; wait $AGENT 2>/dev/null' EXIT INT TERM
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/api/v1/health" >/dev/null 2>&1 && break; sleep 0.2; done
echo "agent on http://127.0.0.1:$PORT (simulated $SIM, log in $DIR/agent.log); token: $TOKEN"
SPARKDECK_TOKEN="$TOKEN" "$BIN/python" - "$PORT" <<'PY'
import asyncio, json, os, sys
from websockets.asyncio.client import connect

async def main(port):
    url = f"ws://127.0.0.1:{port}/api/v1/stream"
    async with connect(url, additional_headers={"Authorization": f"Bearer {os.environ['SPARKDECK_TOKEN']}"}) as ws:
        async for raw in ws:
            f = json.loads(raw)
            if f["type"] == "hello":
                print(f"hello from {f['host']['hostname']} (agent {f['agent_version']}, simulated={f['simulated']})")
                continue
            if f["type"] != "snapshot":
                continue
            g = (f["gpus"] or [{}])[0]
            mem = g.get("memory") or {}
            n = f["noise"]
            print(f"seq {f['seq']:>5}  GPU {g.get('utilization_gpu_percent')}%  {g.get('temperature_c')}C  {g.get('power_w')}W"
                  f"  mem {(mem.get('used_bytes') or 0)/2**30:.1f}/{(mem.get('total_bytes') or 0)/2**30:.1f} GiB{' unified' if mem.get('unified') else ''}"
                  f"  noise {n['index']} ({n['source']})  cpu {f['host']['cpu']['percent']}%", flush=True)

try:
    asyncio.run(main(int(sys.argv[1])))
except KeyboardInterrupt:
    pass
PY
