"""History store failures (disk full, corrupt file, lock held): live streaming continues."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.agent import launch_agent
from tests.helpers.faults import Watcher


def history_status(agent) -> dict:
    r = httpx.get(agent.url + "/api/v1/history", params={"metrics": "cpu.percent", "from": time.time() - 30}, headers=agent.headers(agent.read_token))
    return r.json().get("status") or r.json()


@pytest.fixture
def tiny_state(tmp_path):
    """A 1 MiB tmpfs as the state dir: history fills it quickly."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the suite runs as root in CI): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_disk_full(tiny_state: Path, record):
    agent = launch_agent(tiny_state, "--simulate", "h200x2", "--interval", "0.1")
    try:
        filler = tiny_state / "filler"
        with open(filler, "wb") as f:  # take what is left
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        async with Watcher(agent) as w:
            t0 = time.monotonic()
            await asyncio.sleep(5)
        frames = w.since(t0)
        status = history_status(agent)
        record(
            "history",
            "state dir on a 1 MiB tmpfs, filled to the last byte",
            f"{len(frames)} frames in 5 s at 10 Hz, longest gap {w.max_gap_s(t0) * 1000:.0f} ms; history: {status.get('state')} ({status.get('message', '')[:60]})",
        )
        assert len(frames) >= 40 and w.max_gap_s(t0) < 1.0
        assert status["state"] == "degraded" and "full" in status["message"]
        filler.unlink()  # space is back: history recovers by itself
        deadline = time.time() + 10
        while history_status(agent)["state"] != "ok" and time.time() < deadline:
            await asyncio.sleep(0.2)
        assert history_status(agent)["state"] == "ok"
    finally:
        agent.stop()


def scribble(state: Path) -> None:
    for name in ("history.sqlite3", "history.sqlite3-wal"):
        path = state / name
        if path.exists():
            with open(path, "r+b") as f:  # overwrite the header and first pages in place
                f.write(b"garbage!" * 4096)


async def test_corrupt_database_while_running(tmp_path, record):
    state = tmp_path / "state"
    agent = launch_agent(state, "--simulate", "gb10", "--interval", "0.1")
    try:
        async with Watcher(agent) as w:
            await asyncio.sleep(1)
            scribble(state)
            t0 = time.monotonic()
            await asyncio.sleep(4)
        frames = w.since(t0)
        record(
            "history",
            "history.sqlite3 overwritten with garbage while the agent runs",
            f"{len(frames)} frames in 4 s at 10 Hz, longest gap {w.max_gap_s(t0) * 1000:.0f} ms; history {history_status(agent).get('state')}",
        )
        assert len(frames) >= 30 and w.max_gap_s(t0) < 1.0
    finally:
        agent.stop()


async def test_corrupt_database_found_at_start(tmp_path, record):
    state = tmp_path / "state"
    agent = launch_agent(state, "--simulate", "gb10", "--interval", "0.1")
    agent.stop()
    scribble(state)
    agent = launch_agent(state, "--simulate", "gb10", "--interval", "0.1", port=agent.port, tokens=(agent.read_token, agent.control_token))
    try:
        async with Watcher(agent) as w:
            t0 = time.monotonic()
            await asyncio.sleep(3)
        frames = w.since(t0)
        aside = list(state.glob("history.sqlite3.corrupt-*"))
        status = history_status(agent)
        record(
            "history",
            "agent started on a corrupt history.sqlite3",
            f"{len(frames)} frames in 3 s at 10 Hz; corrupt file moved aside: {'yes' if aside else 'no'}; history {status.get('state')}",
        )
        assert len(frames) >= 20 and aside and status["state"] == "ok"
    finally:
        agent.stop()


async def test_database_locked(tmp_path, record):
    state = tmp_path / "state"
    agent = launch_agent(state, "--simulate", "gb10", "--interval", "0.1")
    try:
        async with Watcher(agent) as w:
            await asyncio.sleep(1)
            other = sqlite3.connect(state / "history.sqlite3", isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")
            t0 = time.monotonic()
            await asyncio.sleep(3)
            during = history_status(agent)
            other.execute("ROLLBACK")
            other.close()
            await asyncio.sleep(1)
        frames = w.since(t0)
        record(
            "history",
            "another process holds an exclusive lock on the database for 3 s",
            f"{len(frames)} frames in 4 s at 10 Hz, longest gap {w.max_gap_s(t0) * 1000:.0f} ms; history during the lock: {during.get('state', during.get('error'))}",
        )
        assert len(frames) >= 30 and w.max_gap_s(t0) < 1.0
        assert history_status(agent)["state"] == "ok"
    finally:
        agent.stop()
