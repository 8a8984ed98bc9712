"""NVML failures: the stream keeps flowing whatever the GPU layer does."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.helpers.faults import Watcher

CASES = {
    "no-driver": ("NVML library missing (LIBRARY_NOT_FOUND at init)", "unavailable"),
    "gpu-lost": ("GPU 1 of 2 answers GPU_IS_LOST mid-run", "degraded"),
    "unsupported": ("every NVML field answers NOT_SUPPORTED", "ok"),
    "hang": ("an NVML call blocks for 30 s (time-boxed at 0.5 s)", "stalled"),
}


@pytest.mark.parametrize("scenario", sorted(CASES))
async def test_stream_keeps_flowing(start_agent, record, scenario):
    tried, state = CASES[scenario]
    agent = start_agent("--simulate", scenario, "--interval", "0.2", env={"SPARKDECK_GPU_TIMEOUT_S": "0.5"})
    async with Watcher(agent) as w:
        t0 = time.monotonic()
        await asyncio.sleep(6)
    frames = w.since(t0)
    gap = w.max_gap_s(after=t0)
    states = {f["gpu_status"]["state"] for f in frames}
    record("nvml", tried, f"{len(frames)} frames in 6 s at 5 Hz, longest gap {gap * 1000:.0f} ms, gpu_status {'/'.join(sorted(states))}")
    assert len(frames) >= 25 and gap < 1.0
    assert state in states
    assert all(f["host"]["memory"]["total_bytes"] > 0 for f in frames)
    assert agent.proc.poll() is None
