"""Detail-screen figures from a headless Textual pilot (not a tmux terminal: wt-m1's bench measures that):
CPU time to open the detail screen (a cold first open, reopens, and a first open after the overview
built it off-stage once the cursor rested on its card; key press until idle) and the client's CPU at 1 Hz
on it, 160x48, from the snapshot fakes. Run: .venv/bin/python bench/tui_detail.py [frames]."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers.tui import prewarmed, until  # noqa: E402
from tests.helpers.tui_fakes import CONTAINERS, NOW, app_for, gpu_gb10, snapshot_frame, spark_client  # noqa: E402


async def main(frames: int) -> None:
    cl = spark_client()
    app = app_for([cl], "overview")
    app._prewarm_broken = True  # cold: no off-stage build (what a press right after start or a cursor move meets)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.5)
        opens = []
        for _ in range(4):
            t0 = time.process_time()
            await pilot.press("d")
            await pilot.pause()
            opens.append(round(1000 * (time.process_time() - t0)))
            await pilot.pause(0.3)
            await pilot.press("o")
            await pilot.pause(0.3)
        print(f"detail open without the off-stage build, CPU ms (first: cold; then reopens): {opens}")
    cl = spark_client()
    app = app_for([cl], "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: prewarmed(app), 5, "the detail screen built off-stage")  # once the cursor rests on the card
        await pilot.pause(0.2)
        t0 = time.process_time()
        await pilot.press("d")
        await pilot.pause()
        print(f"detail first open after the overview built it off-stage, CPU ms: {round(1000 * (time.process_time() - t0))}")
        await pilot.press("d")
        await pilot.pause(0.5)
        c0, w0 = time.process_time(), time.perf_counter()
        for seq in range(121, 121 + frames):
            app.clock = lambda s=seq: float(NOW - 120 + s)  # type: ignore[misc]  # a pinned clock per frame
            cl.handle_frame(snapshot_frame(seq, "spark-01", [gpu_gb10(seq)], CONTAINERS))
            await asyncio.sleep(1.0)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        print(f"detail at 1 Hz: {100 * cpu / wall:.2f}% of a core ({1000 * cpu / frames:.1f} ms CPU per frame, {frames} frames)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))
