"""A hostile read-token client trying to make the agent hold memory or burn CPU for it (issue 12)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import psutil
from websockets.asyncio.client import connect

from tests.helpers.faults import masked_frame, masked_text_frame
from tests.helpers.ws import raw_ws_that_never_reads


async def test_huge_ping_ids_from_clients_that_never_read(start_agent, record):
    agent = start_agent("--simulate", "gb10")
    huge = masked_text_frame(json.dumps({"type": "ping", "id": "x" * 64_000}))  # just under max_message_bytes
    small = masked_text_frame(json.dumps({"type": "ping", "id": "y" * 128}))
    warm = raw_ws_that_never_reads(agent)  # allocator warm-up: the first connection's buffers
    warm.close()
    await asyncio.sleep(1)
    base = agent.rss()
    socks: list[socket.socket] = []
    refused = 0
    try:
        for _ in range(30):
            s = raw_ws_that_never_reads(agent)
            s.settimeout(5)
            socks.append(s)
            try:
                for _ in range(40):
                    s.sendall(huge)
                for _ in range(100):  # ids at the cap: answered, but a non-reader gets at most the queue's worth
                    s.sendall(small)
            except OSError:
                refused += 1  # the agent closed it (1008): it asked faster than it read
        await asyncio.sleep(3)
        peak = agent.rss()
    finally:
        for s in socks:
            s.close()
    await asyncio.sleep(1)
    growth = peak - base
    record(
        "clients",
        "30 read-token clients that never read each send 40 pings with 64 KB ids and 100 with 128-char ids",
        f"agent RSS {base / 2**20:.1f} -> {peak / 2**20:.1f} MiB (+{growth / 2**20:.1f} MiB); {refused} of 30 closed for not reading their answers",
    )
    assert growth < 25 * 2**20
    assert agent.proc.poll() is None


async def test_protocol_pings_from_a_client_that_never_reads(start_agent, record):
    agent = start_agent("--simulate", "gb10")
    pings = masked_frame(0x9, b"p" * 125) * 500  # 500 WebSocket-level pings (~66 KB) a write
    base = agent.rss()
    s = raw_ws_that_never_reads(agent)
    s.settimeout(0.5)
    sent = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 10 and sent < 400:  # up to 200k pings, 26 MB of pongs
            try:
                s.sendall(pings)
            except TimeoutError:
                break  # the agent stopped reading from us: what we asked for is bounded
            sent += 1
        await asyncio.sleep(1)
        peak = agent.rss()
    finally:
        s.close()
    record(
        "clients",
        "a client that never reads sends WebSocket-level pings (125-byte payloads) as fast as it can",
        f"{sent * 500} pings taken before the agent stopped reading from it; agent RSS +{(peak - base) / 2**20:.1f} MiB",
    )
    assert peak - base < 10 * 2**20
    assert agent.proc.poll() is None


async def test_ping_id_cap_answers_an_error_frame(start_agent):
    agent = start_agent("--simulate", "gb10")
    async with connect(agent.ws_url, additional_headers=agent.headers(agent.read_token)) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        await ws.send(json.dumps({"type": "ping", "id": "a" * 128}))
        await ws.send(json.dumps({"type": "ping", "id": "a" * 129}))
        got: list[dict] = []
        while len(got) < 2:
            f = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if f["type"] != "snapshot":
                got.append(f)
        assert got[0] == {"type": "pong", "v": 1, "id": "a" * 128}
        assert got[1]["type"] == "error" and got[1]["code"] == "invalid" and "128" in got[1]["message"]


async def test_replay_flood_is_budgeted(start_agent, record):
    agent = start_agent("--simulate", "gb10", "--interval", "0.1")
    await asyncio.sleep(15)  # ~150 frames in the ring: each full replay is ~0.4 MB
    proc = psutil.Process(agent.proc.pid)
    counts = {"bytes": 0, "backfill": 0, "replay_limited": 0, "snapshot": 0}
    async with connect(agent.ws_url, additional_headers=agent.headers(agent.read_token), max_size=2**22) as ws:
        await ws.recv()

        async def read() -> None:
            async for raw in ws:
                counts["bytes"] += len(raw)
                head = raw[:40]
                if '"backfill"' in head:
                    counts["backfill"] += 1
                elif '"replay_limited"' in raw[:80]:
                    counts["replay_limited"] += 1
                elif '"snapshot"' in head:
                    counts["snapshot"] += 1

        reader = asyncio.create_task(read())
        idle0, t_idle = proc.cpu_times(), time.monotonic()
        await asyncio.sleep(3)
        idle1 = proc.cpu_times()
        idle_cpu = (idle1.user + idle1.system - idle0.user - idle0.system) / (time.monotonic() - t_idle)
        sub = json.dumps({"type": "subscribe", "since_seq": 0})
        sent = 0
        cpu0, t0 = proc.cpu_times(), time.monotonic()
        while time.monotonic() - t0 < 10:
            await ws.send(sub)
            sent += 1
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.5)  # the last answers arrive
        cpu1, wall = proc.cpu_times(), time.monotonic() - t0
        flood = dict(counts)
        cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall
        # the budget refills: a client that waits gets its replay again
        await asyncio.sleep(2)
        before = counts["backfill"]
        await ws.send(sub)
        deadline = time.monotonic() + 10
        while counts["backfill"] == before and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        reader.cancel()
    record(
        "clients",
        f"one read-token client sends subscribe since_seq=0 every 5 ms for 10 s ({sent} requests, ~150-frame ring at 10 Hz)",
        f"{flood['bytes'] / 2**20:.1f} MiB sent back ({flood['backfill']} replays, {flood['replay_limited']} replay_limited); "
        f"agent CPU {cpu * 100:.0f} % of a core during the flood ({idle_cpu * 100:.0f} % idle)",
    )
    assert flood["bytes"] < 50 * 2**20
    assert cpu < 0.40
    assert flood["backfill"] >= 1 and flood["replay_limited"] > sent / 2
    assert counts["backfill"] > before, "a replay after the budget refilled"
