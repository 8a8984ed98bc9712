"""make bench: the agent's cost and stream latency, measured on this machine.

Starts a real agent process (simulated GB10 by default, 1 Hz), then:
  1. idle cost: CPU (% of one core, from /proc/PID/stat) and RSS with N clients over D seconds;
  2. bytes per snapshot frame;
  3. sample -> client receive latency (frame ts vs receive time) with 1, 100 and 500 clients.
Results go to stdout and bench/results.json. Knobs: BENCH_SECONDS (default 60),
BENCH_CLIENTS (10), BENCH_SIMULATE (gb10), BENCH_FANOUT ("1,100,500").
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

from tests.conftest import launch_agent  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def reader(url: str, headers: dict, stop: asyncio.Event, sink: list | None, sizes: list | None) -> None:
    async with connect(url, additional_headers=headers, max_size=2**22, open_timeout=60) as ws:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 1.0)
            except asyncio.TimeoutError:
                continue
            now = time.time()
            if sink is not None and '"type":"snapshot"' in raw[:40]:
                frame = json.loads(raw)
                sink.append(now - frame["ts"])
                if sizes is not None:
                    sizes.append(len(raw.encode()))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def idle_cost(agent, clients: int, seconds: float) -> dict:
    stop = asyncio.Event()
    sizes: list[int] = []
    tasks = [asyncio.create_task(reader(agent.ws_url, agent.headers(agent.read_token), stop, [] if i == 0 else None, sizes if i == 0 else None)) for i in range(clients)]
    await asyncio.sleep(5)  # settle
    pid = agent.proc.pid
    c0, t0 = cpu_seconds(pid), time.monotonic()
    rss = []
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(1)
        rss.append(rss_bytes(pid))
    cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "clients": clients,
        "seconds": seconds,
        "cpu_percent_of_one_core": round(cpu, 2),
        "rss_mb_max": round(max(rss) / 2**20, 1),
        "rss_mb_start": round(rss[0] / 2**20, 1),
        "frame_bytes_median": int(statistics.median(sizes)) if sizes else None,
        "frame_bytes_max": max(sizes) if sizes else None,
    }


async def latency(agent, clients: int, samples: int) -> dict:
    stop = asyncio.Event()
    sink: list[float] = []
    tasks = [asyncio.create_task(reader(agent.ws_url, agent.headers(agent.read_token), stop, sink, None)) for _ in range(clients)]
    await asyncio.sleep(3)  # all connected
    sink.clear()
    await asyncio.sleep(samples * agent_interval)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    ms = [v * 1000 for v in sink]
    return {"clients": clients, "frames": len(ms), "p50_ms": round(pct(ms, 0.5), 2), "p99_ms": round(pct(ms, 0.99), 2), "max_ms": round(max(ms), 2) if ms else None}


agent_interval = 1.0


async def main() -> dict:
    seconds = float(os.environ.get("BENCH_SECONDS", "60"))
    clients = int(os.environ.get("BENCH_CLIENTS", "10"))
    scenario = os.environ.get("BENCH_SIMULATE", "gb10")
    fanout = [int(x) for x in os.environ.get("BENCH_FANOUT", "1,100,500").split(",") if x]
    with tempfile.TemporaryDirectory() as state:
        agent = launch_agent(Path(state), "--simulate", scenario, "--interval", str(agent_interval))
        try:
            results = {"scenario": scenario, "interval_s": agent_interval, "machine": {"cpus": os.cpu_count()}}
            results["idle"] = await idle_cost(agent, clients, seconds)
            results["latency"] = [await latency(agent, n, 10) for n in fanout]
            results["rss_mb_after"] = round(rss_bytes(agent.proc.pid) / 2**20, 1)
        finally:
            agent.stop()
    return results


if __name__ == "__main__":
    res = asyncio.run(main())
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    idle = res["idle"]
    print(f"agent at {res['interval_s']} Hz, {idle['clients']} clients, {idle['seconds']:.0f} s: "
          f"CPU {idle['cpu_percent_of_one_core']} % of one core, RSS {idle['rss_mb_max']} MB, frame {idle['frame_bytes_median']} B")
    for lat in res["latency"]:
        print(f"  {lat['clients']:>4} clients: sample->receive p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms ({lat['frames']} frames)")
    print(f"written to {out}")
