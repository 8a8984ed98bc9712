"""What the alert engine costs per sample: the built-in rules over a real simulated frame with 20
containers, 5 of them watched (the sampler-listener path; nothing fires).

    .venv/bin/python -m bench.alert_eval [N]

Prints µs per frame and the share of one core at 1 Hz.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from agent.alerts.engine import AlertEngine
from agent.collectors.gpu import GpuCollector
from agent.collectors.nvml_fake import FakeNvml
from agent.settings import AgentSettings


def frame_and_tracker() -> tuple[dict, SimpleNamespace]:
    gpus, _status = GpuCollector(FakeNvml.scenario("gb10"), simulated=True).collect()
    rows, entries = [], {}
    for i in range(20):
        full = f"{i:02d}" + "ab" * 31
        labels = {"sparkdeck.watch": "1"} if i < 5 else {"org.opencontainers.image.title": "x" * 40}
        entries[full] = {"id": full[:12], "full_id": full, "name": f"c{i}", "state": "running", "labels": labels, "model": None}
        rows.append({"id": full[:12], "name": f"c{i}", "gpu_memory_bytes": 2**30 if i < 5 else 0})
    frame = {
        "ts": time.time(),
        "gpus": gpus,
        "host": {"memory": {"models_available_bytes": 50 * 2**30}},
        "containers": rows,
        "containers_status": {"state": "ok"},
    }
    return frame, SimpleNamespace(tracker=SimpleNamespace(entries=entries, started={}, status={"state": "ok"}))


async def main(n: int) -> None:
    frame, containers = frame_and_tracker()
    with tempfile.TemporaryDirectory() as d:
        eng = AlertEngine(AgentSettings(state_dir=Path(d)), broadcast=lambda *_: None, hostname="bench", containers=containers)
        eng.note_frame(frame)
        start = time.perf_counter()
        for _ in range(n):
            frame["ts"] += 1.0
            eng.note_frame(frame)
        per = (time.perf_counter() - start) / n
    print(f"alert rules: {per * 1e6:.1f} µs per frame ({len(eng.rules)} rules, 20 containers, 5 watched); {per * 100:.4f} % of one core at 1 Hz")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
