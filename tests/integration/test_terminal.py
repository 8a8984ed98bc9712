"""The real client in a real terminal (tmux), on a real agent: keys reach it through tui/driver.py's input
thread — Escape included —, the thread sleeps while no key comes, and `q` ends the process at once."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers.agent import launch_agent
from tests.helpers.terminal import NO_ENGINE, Pane, client_env, thread_wakeups


@pytest.fixture
def tmux() -> None:
    if shutil.which("tmux") is None:
        message = "REAL-TERMINAL TEST NOT RUN: tmux is not installed (apt-get install tmux)"
        if os.environ.get("SPARKDECK_REQUIRE_TMUX") == "1":
            pytest.fail(message + "; SPARKDECK_REQUIRE_TMUX=1 makes this a failure", pytrace=False)
        pytest.skip(message)


def client_process(pane: Pane) -> psutil.Process:
    procs = [psutil.Process(pane.pid), *psutil.Process(pane.pid).children(recursive=True)]
    return next(p for p in reversed(procs) if any("sparkdeck" in part for part in p.cmdline()))


def wakeups(pid: int) -> dict[int, int]:
    """``thread_wakeups`` of every thread of ``pid``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = thread_wakeups(pid, int(tid))
        except (FileNotFoundError, ProcessLookupError):  # the thread ended meanwhile
            continue
    return out


def test_keys_reach_the_client_its_input_thread_sleeps_and_q_quits(tmp_path: Path, tmux) -> None:
    agent = launch_agent(tmp_path / "agent", "--simulate", "gb10", "--interval", "1.0", env=NO_ENGINE)
    pane = None
    try:
        sparkdeck = str(Path(sys.executable).with_name("sparkdeck"))
        pane = Pane("term", [sparkdeck, "bench0"], client_env(tmp_path, [agent]))
        assert pane.wait_for("live", 30), pane.screen()
        proc = client_process(pane)

        pane.keys("?")
        assert pane.wait_for("Everywhere", 10), pane.screen()
        pane.keys("Escape")  # a lone ESC: only the parser's deadline makes it a key
        deadline = time.monotonic() + 10
        while "Everywhere" in pane.screen() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Everywhere" not in pane.screen(), "Escape did not close the help"

        # every thread but the main one (frames, ticks) and Textual's writer (a write a pass) sleeps: Textual's
        # own input thread would have woken ~30 times in these 3 s
        before = wakeups(proc.pid)
        time.sleep(3)
        after = wakeups(proc.pid)
        busy = {tid: after[tid] - before[tid] for tid in after if tid in before and tid != proc.pid and after[tid] - before[tid] >= 15}
        assert not busy, f"threads woken 15+ times in 3 s with no key pressed: {busy}"

        pane.keys("q")
        proc.wait(timeout=10)  # the input thread is woken to stop, not waited out
    finally:
        if pane is not None:
            pane.close()
        agent.stop()
