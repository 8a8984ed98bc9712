"""The config file named by $SPARKDECK_CONFIG, and what `buffer_s` bounds: a real agent process each."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from agent.history.store import HistoryStore
from agent.ring import Ring
from tests.helpers.agent import launch_agent
from tests.helpers.calls import wait_for

RING_CAP = 3000  # the README's "≤ 3,000": frames kept in memory whatever buffer_s asks


def info(agent) -> dict:
    return httpx.get(agent.url + "/api/v1/info", headers=agent.headers(agent.read_token), timeout=30).json()


def test_config_from_the_environment_variable_and_buffer_s_bounds_the_ring(tmp_path: Path) -> None:
    cfg = tmp_path / "elsewhere" / "agent.toml"
    cfg.parent.mkdir()
    cfg.write_text('interval_s = 0.1\nbuffer_s = 10\nallowed_hosts = ["spark.example"]\n')
    agent = launch_agent(tmp_path / "state", "--simulate", "gb10", env={"SPARKDECK_CONFIG": str(cfg)})
    try:
        assert info(agent)["interval_s"] == 0.1  # read from the file $SPARKDECK_CONFIG names
        assert httpx.get(agent.url + "/api/v1/health", headers={"Host": "spark.example:8611"}).status_code == 200
        assert httpx.get(agent.url + "/api/v1/health", headers={"Host": "other.example:8611"}).status_code == 400
        # buffer_s = 10 at 0.1 s: 100 frames in memory, and no more however long it runs
        wait_for(lambda: info(agent)["latest_seq"] > 150, 60, "150 frames sampled")
        held = info(agent)
        assert held["buffered_snapshots"] == 100 and held["oldest_seq"] == held["latest_seq"] - 99, held
    finally:
        agent.stop()


def test_buffer_s_beyond_the_cap_keeps_3000_frames(tmp_path: Path) -> None:
    """buffer_s = 86400 at 1 s would be 86,400 frames; the ring holds 3,000 (refilled from the store at start)."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)

    async def fill() -> None:
        store = HistoryStore(state / "history.sqlite3")
        start = time.time() - RING_CAP - 600
        for i in range(RING_CAP + 500):
            await store.append(i + 1, start + i, Ring.pack(f'{{"seq":{i + 1}}}'), {"cpu.percent": 1.0})
        store.close()

    asyncio.run(fill())
    agent = launch_agent(state, "--simulate", "gb10", env={"SPARKDECK_BUFFER_S": "86400"})
    try:
        got = info(agent)
        assert got["buffered_snapshots"] == RING_CAP, got
        assert got["latest_seq"] >= RING_CAP + 500
    finally:
        agent.stop()
