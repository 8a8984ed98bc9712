"""make soak: 10 minutes at 10 Hz with 50 stream clients and 20 containers.

Pass: RSS growth <= 5 %, no fd growth, no task growth (after a 90 s warm-up),
and every client still receiving. Prints the figures, writes bench/soak.json,
exits 1 on a failure. SOAK_SECONDS (600), SOAK_CLIENTS (50), SOAK_CONTAINERS (20).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.bench import _client_worker, start_containers, stop_containers, stream_cap_env  # noqa: E402
from tests.helpers.agent import launch_agent  # noqa: E402


def info(agent) -> dict:
    return httpx.get(agent.url + "/api/v1/info", headers=agent.headers(agent.read_token), timeout=30).json()


def main() -> int:
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    clients = int(os.environ.get("SOAK_CLIENTS", "50"))
    n_containers = int(os.environ.get("SOAK_CONTAINERS", "20"))
    start_containers(n_containers)
    try:
        with tempfile.TemporaryDirectory() as state:
            # a 60 s in-memory ring fills during the warm-up (the default 5 min ring would still be
            # filling, by design, during the first five minutes); older backfill reads the history store
            agent = launch_agent(Path(state), "--simulate", "gb10", "--interval", "0.1", env={"SPARKDECK_BUFFER_S": "60", **stream_cap_env(clients)})
            q: mp.Queue = mp.Queue()
            procs = [
                mp.Process(target=_client_worker, args=(agent.ws_url, agent.read_token, clients // 2 + (i < clients % 2), seconds + 90, q)) for i in range(2)
            ]
            for p in procs:
                p.start()
            for _ in procs:
                assert q.get(timeout=120)[0] == "ready"
            time.sleep(90)  # warm-up: the ring fills, allocator and caches reach their working size
            start = info(agent)
            t0 = time.monotonic()
            samples = []
            while time.monotonic() - t0 < seconds:
                time.sleep(30)
                samples.append(info(agent)["process"])
                print(
                    f"  t={time.monotonic() - t0:4.0f}s rss {samples[-1]['rss_bytes'] / 2**20:.1f} MiB fds {samples[-1]['fds']} tasks {samples[-1]['tasks']}",
                    flush=True,
                )
            end = info(agent)
            received = []
            for _ in procs:
                _, lat, _ = q.get(timeout=300)
                received.append(len(lat))
            for p in procs:
                p.join(10)
            agent.stop()
    finally:
        stop_containers()
    s, e = start["process"], end["process"]
    # fds and tasks include short-lived ones (a stats read, a probe): compare the first and last
    # three samples' medians, not two single readings
    head, tail = samples[:3], samples[-3:]
    med = lambda rows, k: sorted(r[k] for r in rows)[len(rows) // 2]  # noqa: E731
    res = {
        "seconds": seconds,
        "interval_s": 0.1,
        "clients": clients,
        "containers": n_containers,
        "rss_mb_start": round(s["rss_bytes"] / 2**20, 1),
        "rss_mb_end": round(e["rss_bytes"] / 2**20, 1),
        "rss_growth_percent": round((e["rss_bytes"] - s["rss_bytes"]) * 100 / s["rss_bytes"], 2),
        "fds": [med(head, "fds"), med(tail, "fds")],
        "tasks": [med(head, "tasks"), med(tail, "tasks")],
        "frames_received_per_client_process": received,
        "seq_span": [start["latest_seq"], end["latest_seq"]],
    }
    ok = res["rss_growth_percent"] <= 5 and res["fds"][1] <= res["fds"][0] and res["tasks"][1] <= res["tasks"][0] and all(r > 0 for r in received)
    res["pass"] = ok
    (ROOT / "bench" / "soak.json").write_text(json.dumps(res, indent=2) + "\n")
    print(
        f"soak {seconds:.0f} s at 10 Hz, {clients} clients, {n_containers} containers: RSS {res['rss_mb_start']} -> {res['rss_mb_end']} MiB "
        f"({res['rss_growth_percent']:+.2f} %), fds {res['fds'][0]} -> {res['fds'][1]}, tasks {res['tasks'][0]} -> {res['tasks'][1]} (medians of 3 samples): {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
