#!/usr/bin/env python3
"""Measure what per-container stats cost, to choose how the agent reads them (docs/containers.md).

Starts N idle test containers (sparkdeck-test/busybox, see scripts/docker-test-image.sh),
then times one refresh of every container's figures four ways:
  cgroup   cgroup v1/v2 files + /proc/PID/net/dev (agent.containers.stats), in-process
  oneshot  GET /containers/{id}/stats?stream=false&one-shot=true, all N concurrently
  twoshot  GET /containers/{id}/stats?stream=false (engine waits for a second sample)
  streams  N open stats streams (one frame per container per second), for a few seconds
and reports wall time, the agent's CPU time and dockerd's CPU time for each.
Usage: .venv/bin/python scripts/container-stats-cost.py [N]
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from agent.containers.engine import Engine
from agent.containers.stats import StatsReader

IMAGE = "sparkdeck-test/busybox:latest"
LABEL = "sparkdeck.bench=1"


def dockerd_cpu_s() -> float:
    pid = int(Path("/var/run/docker.pid").read_text())
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    def __enter__(self) -> Meter:
        self.wall, self.cpu, self.dockerd = time.perf_counter(), time.process_time(), dockerd_cpu_s()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.dockerd = dockerd_cpu_s() - self.dockerd


def report(label: str, m: Meter, n: int, passes: int = 1) -> None:
    print(
        f"{label:<44} wall {m.wall / passes * 1000:9.2f} ms/pass   agent CPU {m.cpu / passes / n * 1e6:9.1f} us/container   dockerd CPU {m.dockerd / passes / n * 1000:7.2f} ms/container"
    )


async def main(n: int) -> None:
    ids = [subprocess.check_output(["docker", "run", "-d", "--label", LABEL, IMAGE, "sleep", "600"], text=True).strip() for _ in range(n)]
    try:
        engine = Engine()
        pids = {cid: (await engine.call("GET", f"containers/{cid}/json"))["State"]["Pid"] for cid in ids}
        reader = StatsReader()
        reader.read_all(pids)
        passes = 200
        with Meter() as m:
            for _ in range(passes):
                reader.read_all(pids)
        report(f"cgroup files, {n} containers", m, n, passes)

        oneshot = {"stream": "false", "one-shot": "true"}
        with Meter() as m:
            for _ in range(5):
                for cid in ids:
                    await engine.call("GET", f"containers/{cid}/stats", params=oneshot)
        report(f"engine stats one-shot, {n} sequential", m, n, 5)
        with Meter() as m:
            for _ in range(5):
                await asyncio.gather(*(engine.call("GET", f"containers/{cid}/stats", params=oneshot) for cid in ids))
        report(f"engine stats one-shot, {n} concurrent", m, n, 5)

        sample = ids[: min(n, 5)]
        with Meter() as m:
            for cid in sample:
                await engine.call("GET", f"containers/{cid}/stats", params={"stream": "false"})
        report(f"engine stats two-sample, {len(sample)} sequential", m, len(sample))

        seconds = 5

        async def consume(cid: str) -> int:
            count = 0
            try:
                async with asyncio.timeout(seconds):
                    async for _ in engine.stream_lines("GET", f"containers/{cid}/stats", params={"stream": "true"}):
                        count += 1
            except TimeoutError:
                pass
            return count

        with Meter() as m:
            frames = await asyncio.gather(*(consume(cid) for cid in ids))
        print(
            f"{'engine stats streams, ' + str(n) + ' open, ' + str(seconds) + ' s':<44} frames {sum(frames)}   agent CPU {m.cpu / seconds / n * 1e6:9.1f} us/container/s   dockerd CPU {m.dockerd / seconds / n * 1000:7.2f} ms/container/s"
        )
        await engine.close()
    finally:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
