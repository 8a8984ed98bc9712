"""What the GPU process list costs: the sampler's per-tick note and one GET /api/v1/processes.

    .venv/bin/python -m bench.processes_list [PROCESSES] [N]

Starts PROCESSES real `sleep` children (default 16), tells a ProcessService that NVML lists
them, and prints µs per note_frame (runs every sample) and ms per listing after the first
(the first waits CPU_WINDOW_S to measure CPU; later ones reuse the previous reading).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from agent.processes.service import CPU_WINDOW_S, ProcessService


async def main(count: int, n: int) -> None:
    procs = [subprocess.Popen(["sleep", "600"]) for _ in range(count)]
    try:
        frame = {
            "gpus": [{"index": 0, "uuid": "GPU-0", "processes": [{"pid": p.pid, "used_memory_bytes": 1 << 30} for p in procs]}],
            "gpu_status": {"state": "ok"},
        }
        svc = ProcessService()
        svc.note_frame(frame)
        start = time.perf_counter()
        for _ in range(n):
            svc.note_frame(frame)
        note_us = (time.perf_counter() - start) / n * 1e6
        await svc.listing()  # the first: waits CPU_WINDOW_S
        await asyncio.sleep(CPU_WINDOW_S)
        times = []
        for _ in range(max(1, n // 100)):
            await asyncio.sleep(CPU_WINDOW_S)  # a CPU % per listing, as a screen reloading every 2 s gets
            t0 = time.perf_counter()
            body = await svc.listing()
            times.append(time.perf_counter() - t0)
        assert len(body["processes"]) == count
        times.sort()
        print(
            f"{count} GPU processes: note_frame {note_us:.1f} µs per sample; listing {times[len(times) // 2] * 1e3:.2f} ms median, {times[-1] * 1e3:.2f} ms max over {len(times)}"
        )
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 16, int(sys.argv[2]) if len(sys.argv) > 2 else 2000))
