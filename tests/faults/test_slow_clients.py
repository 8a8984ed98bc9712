"""A client that stops reading for a minute, and 500 clients connecting and dropping in a loop."""

from __future__ import annotations

import asyncio
import itertools
import time

import httpx
from websockets.asyncio.client import connect

from tests.helpers.faults import Watcher
from tests.helpers.ws import raw_ws_that_never_reads


def info(agent) -> dict:
    return httpx.get(agent.url + "/api/v1/info", headers=agent.headers(agent.read_token)).json()


async def churn(agent, total: int, at_once: int) -> int:
    done = 0

    async def one() -> None:
        async with connect(agent.ws_url, additional_headers=agent.headers(agent.read_token), open_timeout=30) as ws:
            await ws.recv()  # hello, then drop

    while done < total:
        batch = min(at_once, total - done)
        await asyncio.gather(*(one() for _ in range(batch)))
        done += batch
    return done


async def test_stalled_minute_and_churn(start_agent, record):
    agent = start_agent("--simulate", "gb10", "--interval", "0.1", env={"SPARKDECK_BUFFER_S": "30"})
    stalled = raw_ws_that_never_reads(agent)
    try:
        async with Watcher(agent) as w:
            # warm-up: the ring fills (30 s buffer) and the allocator reaches its working size for
            # this connection rate (measured: RSS rises over the first ~1,000 connections, then flattens)
            await churn(agent, 1000, 25)
            await asyncio.sleep(30)
            churned = dropped = 0
            base = info(agent)["process"]
            t0 = time.monotonic()
            while time.monotonic() - t0 < 60:  # one minute with a client that reads nothing
                churned += await churn(agent, 50, 25) if churned < 500 else 0
                # sampled while it is connected: answering no pings, it is cut off ~60 s after connecting
                dropped = max(dropped, info(agent)["stream_frames_dropped"])
                await asyncio.sleep(1)
            frames = w.since(t0)
    finally:
        stalled.close()
    await asyncio.sleep(2)
    after = info(agent)["process"]
    seqs = [f["seq"] for f in frames]
    lat = sorted(w.latency_ms[-len(frames) :])
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    gaps = [b - a for a, b in itertools.pairwise(seqs)]
    growth = (after["rss_bytes"] - base["rss_bytes"]) / base["rss_bytes"]
    record(
        "clients",
        "one client reads nothing for 60 s while 500 clients connect and drop; one healthy client watches",
        f"healthy client: {len(frames)} frames, {sum(g - 1 for g in gaps)} missed, latency p50 {p50:.1f} ms / p99 {p99:.1f} ms; stalled client lost {dropped} frames (latest wins); "
        f"RSS {base['rss_bytes'] / 2**20:.1f} -> {after['rss_bytes'] / 2**20:.1f} MiB ({growth * 100:+.1f} %), fds {base['fds']} -> {after['fds']}, tasks {base['tasks']} -> {after['tasks']}",
    )
    assert churned == 500
    assert all(g == 1 for g in gaps) and len(frames) >= 500
    assert dropped > 0
    assert growth <= 0.10 and after["fds"] <= base["fds"] + 2 and after["tasks"] <= base["tasks"] + 2
