"""History: the SQLite store's tiers and failure recovery, seq across restarts, /api/v1/history, /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from agent.history.store import HistoryStore
from agent.ring import Ring
from tests.helpers.agent import ROOT, launch_agent
from tests.helpers.calls import wait_for


def run(coro):
    return asyncio.run(coro)


async def fill(store: HistoryStore, start_ts: float, n: int, step: float = 1.0, seq0: int = 1) -> None:
    for i in range(n):
        await store.append(seq0 + i, start_ts + i * step, Ring.pack(f'{{"seq":{seq0 + i}}}'), {"cpu.percent": float(i % 10), "gpu0.power_w": 100.0 + i})


def test_raw_tier_and_step_buckets(tmp_path):
    async def go():
        store = HistoryStore(tmp_path / "h.sqlite3")
        now = time.time()
        await fill(store, now - 100, 100)
        res = await store.query(["cpu.percent", "gpu0.power_w"], now - 100, now, 10)
        store.close()
        return res

    res = run(go())
    assert res["tier"] == "raw" and res["step"] == 10
    cpu = res["series"]["cpu.percent"]
    assert len(cpu["ts"]) == 10
    assert cpu["min"][0] == 0.0 and cpu["max"][0] == 9.0 and cpu["avg"][0] == 4.5
    assert res["series"]["gpu0.power_w"]["max"][-1] == 199.0


def test_aggregate_tiers_serve_older_ranges(tmp_path):
    async def go():
        store = HistoryStore(tmp_path / "h.sqlite3", raw_s=60)
        t0 = (time.time() - 2 * 3600) // 60 * 60  # two hours ago, minute-aligned
        await fill(store, t0, 600)  # ten minutes at 1 Hz
        res10 = await store.query(["gpu0.power_w"], t0, t0 + 600, 60)
        old = await store.query(["cpu.percent"], t0 - 30 * 3600, t0 + 600, 3600)
        store.close()
        return res10, old

    res10, old = run(go())
    assert res10["tier"] == "agg10"
    p = res10["series"]["gpu0.power_w"]
    assert p["min"][0] == 100.0 and p["max"][0] == 159.0 and p["avg"][0] == pytest.approx(129.5)
    assert old["tier"] == "agg60" and old["step"] == 3600 and old["series"]["cpu.percent"]["avg"]


def test_corrupt_database_is_moved_aside_and_a_fresh_one_started(tmp_path):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not a database" * 100)

    async def go():
        store = HistoryStore(path)
        first = await store.append(1, time.time(), b"x", {"cpu.percent": 1.0})
        await store.append(2, time.time(), b"y", {"cpu.percent": 2.0})  # degraded: written without waiting
        seq = await store.max_seq()  # queued behind that write
        status = dict(store.status)
        store.close()
        return first, status, seq

    first, status, seq = run(go())
    assert first is False and seq == 2
    assert status["state"] == "ok"
    assert list(tmp_path.glob("h.sqlite3.corrupt-*"))


def test_locked_database_degrades_then_recovers(tmp_path):
    path = tmp_path / "h.sqlite3"

    async def go():
        store = HistoryStore(path)
        assert await store.append(1, time.time(), b"x", {"cpu.percent": 1.0})
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        locked = await store.append(2, time.time(), b"y", {"cpu.percent": 2.0})
        status = dict(store.status)
        other.execute("ROLLBACK")
        other.close()
        await store.append(3, time.time(), b"z", {"cpu.percent": 3.0})  # degraded: not waited for
        seq = await store.max_seq()
        recovered = dict(store.status)
        blocking_again = await store.append(4, time.time(), b"w", {"cpu.percent": 4.0})
        store.close()
        return locked, status, seq, recovered, blocking_again

    locked, status, seq, recovered, blocking_again = run(go())
    assert locked is False and status["state"] == "degraded" and "locked" in status["message"]
    assert seq == 3 and recovered["state"] == "ok" and blocking_again is True


def test_prune_keeps_disk_bounded(tmp_path):
    async def go():
        store = HistoryStore(tmp_path / "h.sqlite3", raw_s=60, tier10_s=600, tier60_s=3600)
        await fill(store, time.time() - 7200, 200, step=30)
        removed = await store.prune()
        left = await store.recent(10**9)
        store.close()
        return removed, left

    removed, left = run(go())
    assert removed > 0 and all(ts >= time.time() - 61 for _, ts, _ in left)


async def seqs_from(agent, since: int | None, count: int) -> tuple[dict, list[int]]:
    async with connect(agent.ws_url, additional_headers=agent.headers(agent.read_token)) as ws:
        hello = json.loads(await ws.recv())
        if since is not None:
            await ws.send(json.dumps({"type": "subscribe", "since_seq": since}))
        seqs: list[int] = []
        while len(seqs) < count:
            f = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if f["type"] == "snapshot":
                seqs.append(f["seq"])
        return hello, seqs


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_seq_keeps_rising_and_backfill_spans_a_restart(tmp_path, how):
    state = tmp_path / "state"
    agent = launch_agent(state, "--simulate", "gb10", "--interval", "0.1")
    _, before = run(seqs_from(agent, None, 10))
    seen = before[-1]
    time.sleep(0.5)  # the agent publishes more frames this client never receives
    agent.proc.send_signal(how)
    agent.proc.wait(15)
    agent2 = launch_agent(state, "--simulate", "gb10", "--interval", "0.1", port=agent.port, tokens=(agent.read_token, agent.control_token))
    try:
        hello, after = run(seqs_from(agent2, seen, 30))
        assert hello["oldest_seq"] is not None and hello["oldest_seq"] <= seen
        # every seq after the last one seen, across the restart: no gap, no repeat
        assert seen + 1 in after
        tail = after[after.index(seen + 1) :]
        assert tail == list(range(seen + 1, seen + 1 + len(tail)))
    finally:
        agent2.stop()


def test_history_endpoint(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.1")
    time.sleep(2)
    h = agent.headers(agent.read_token)
    r = httpx.get(agent.url + "/api/v1/history", params={"metrics": "gpu0.power_w,cpu.percent", "from": time.time() - 60, "step": 1}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tier"] == "raw" and body["status"]["state"] == "ok"
    assert len(body["series"]["gpu0.power_w"]["avg"]) >= 1
    bad = httpx.get(agent.url + "/api/v1/history", params={"metrics": "gpu0.power_w;DROP TABLE frames"}, headers=h)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_metrics"
    assert httpx.get(agent.url + "/api/v1/history", params={"metrics": "cpu.percent", "from": 10, "to": 5}, headers=h).status_code == 400
    assert httpx.get(agent.url + "/api/v1/history", params={"metrics": "cpu.percent"}).status_code == 401


def test_prometheus_metrics(start_agent):
    agent = start_agent("--simulate", "gb10")
    assert httpx.get(agent.url + "/metrics").status_code == 401
    r = httpx.get(agent.url + "/metrics", headers=agent.headers(agent.read_token))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    power = fams["sparkdeck_gpu_power_watts"].samples[0]
    assert power.labels == {"gpu": "0", "uuid": "GPU-5a1e7c2b-0b10-4f5e-9d1a-5a5a5a5a0b10", "name": "NVIDIA GB10"}
    assert 0 < power.value < 200
    assert "sparkdeck_gpu_power_limit_watts" not in {s.name for f in fams.values() for s in f.samples}  # n/a on GB10: absent, not 0
    assert fams["sparkdeck_gpu_memory_used_bytes"].samples[0].labels["unified"] == "true"
    assert 0 <= fams["sparkdeck_gpu_utilization_ratio"].samples[0].value <= 1
    assert fams["sparkdeck_noise_index"].samples[0].labels == {"source": "power-thermal"}


def test_prometheus_metrics_public(start_agent):
    agent = start_agent("--simulate", "h100", env={"SPARKDECK_METRICS_PUBLIC": "true"})
    r = httpx.get(agent.url + "/metrics")
    assert r.status_code == 200 and "sparkdeck_gpu_power_limit_watts" in r.text


def test_backfill_older_than_the_ring_comes_from_the_store(tmp_path):
    agent = launch_agent(tmp_path / "state", "--simulate", "gb10", "--interval", "0.1", env={"SPARKDECK_BUFFER_S": "10"})
    try:
        time.sleep(13)  # the 100-frame ring no longer holds seq 1; the store does

        async def go():
            async with connect(agent.ws_url, additional_headers=agent.headers(agent.read_token), max_size=2**24) as ws:
                hello = json.loads(await ws.recv())
                await ws.send(json.dumps({"type": "subscribe", "since_seq": 0}))
                seqs = []
                while True:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if f["type"] == "snapshot":
                        seqs.append(f["seq"])
                    elif f["type"] == "backfill":
                        return hello, seqs, f

        hello, seqs, backfill = run(go())
        assert hello["oldest_seq"] == 1
        replay = seqs[seqs.index(1) :]
        assert replay == list(range(1, len(replay) + 1)) and len(replay) > 110
        assert backfill["complete"] is True and backfill["first_seq"] == 1
    finally:
        agent.stop()


def test_every_series_the_readme_lists_answers_with_samples(start_agent):
    """The README's list of history series, read from the README itself: each one answers with stored samples."""
    readme = (ROOT / "README.md").read_text()
    listed = readme[readme.index("`{tier, step, series: {name: {ts, min, avg, max}}}`. Series:") : readme.index("`GET /metrics` serves")]
    names = sorted({n.replace("gpuN.", "gpu0.") for n in re.findall(r"`((?:gpuN|[a-z]+)\.[a-z0-9_]+)`", listed)})
    assert len(names) >= 20, names  # the list was found, not a fragment of it
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    h = agent.headers(agent.read_token)

    def answered() -> dict | None:
        r = httpx.get(agent.url + "/api/v1/history", params={"metrics": ",".join(names), "from": time.time() - 60, "step": 1}, headers=h)
        assert r.status_code == 200, r.text
        series = r.json()["series"]
        return series if all(any(v is not None for v in series.get(n, {}).get("avg", [])) for n in names if not n.startswith("memory.psi")) else None

    series = wait_for(answered, 30, "every listed series with samples")
    assert set(series) >= set(names)
    if Path("/proc/pressure/memory").exists():  # PSI needs a kernel that has it
        assert series["memory.psi_some_avg10"]["avg"] and series["memory.psi_full_avg10"]["avg"]
