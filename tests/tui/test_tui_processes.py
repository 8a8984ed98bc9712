"""The processes screen (key p) against a real agent and real processes: list, sort, filter, k / K."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.helpers.processes import DEAF_TO_TERM, NO_CONTAINERS, gpu_env
from tests.helpers.tui import until
from tui import client as c
from tui.app import SparkdeckApp
from tui.client import Target
from tui.screens.confirm import ConfirmScreen
from tui.screens.processes import ProcessesScreen
from tui.widgets.processes_table import ProcessesTable


async def select(pilot, table: ProcessesTable, pid: int) -> None:
    await until(pilot, lambda: any(r["pid"] == pid for r in table.by_key.values()), what=f"pid {pid} in the table")
    key = next(k for k, r in table.by_key.items() if r["pid"] == pid)
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause()
    assert table.selected()["pid"] == pid


@pytest.fixture
def procs():
    started = [subprocess.Popen(["sleep", "300"]), subprocess.Popen([sys.executable, "-c", DEAF_TO_TERM])]
    time.sleep(0.3)  # the Python child has set SIG_IGN by now
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


async def test_processes_screen_signals(start_agent, procs):
    sleeper, deaf = procs
    agent = start_agent("--simulate", "gb10", "--interval", "0.25", env={**gpu_env(sleeper.pid, deaf.pid), **NO_CONTAINERS})
    app = SparkdeckApp([Target("spark", agent.url, agent.control_token)], start_view="detail")
    async with app.run_test(size=(140, 36)) as pilot:
        await until(pilot, lambda: app.clients[0].state == c.LIVE, what="live")
        await pilot.press("p")
        assert isinstance(app.screen, ProcessesScreen)
        table = app.screen.query_one(ProcessesTable)
        await until(pilot, lambda: len(table.by_key) == 2, what="two rows")
        assert table.get_row_at(0)[-1].plain.startswith("host (no container)")  # the group's header row

        # filter: only the Python child
        await pilot.press("slash", *"import", "enter")
        await until(pilot, lambda: [r["pid"] for r in table.by_key.values()] == [deaf.pid], what="filtered")
        await pilot.press("escape")
        await until(pilot, lambda: len(table.by_key) == 2, what="filter cleared")
        await pilot.press("S")
        assert table.sort_key == "cpu_percent"

        # k asks first; n sends nothing
        await select(pilot, table, deaf.pid)
        await pilot.press("k")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert deaf.poll() is None
        # TERM ignored: the screen says so
        await pilot.press("k", "y")
        await until(pilot, lambda: "had no effect" in app.screen.outcome, what="TERM had no effect", timeout=30)
        assert deaf.poll() is None
        await select(pilot, table, deaf.pid)
        await pilot.press("K", "y")
        await until(pilot, lambda: deaf.poll() is not None, what="KILL", timeout=30)
        assert deaf.returncode == -9
        await until(pilot, lambda: [r["pid"] for r in table.by_key.values()] == [sleeper.pid], what="row gone")
        assert app.screen.outcome == ""
        assert sleeper.poll() is None


async def test_read_token_disables_the_keys(start_agent, procs):
    sleeper, _ = procs
    agent = start_agent("--simulate", "gb10", env={**gpu_env(sleeper.pid), **NO_CONTAINERS})
    app = SparkdeckApp([Target("spark", agent.url, agent.read_token)], start_view="processes")
    async with app.run_test(size=(140, 36)) as pilot:
        await until(pilot, lambda: app.clients[0].state == c.LIVE, what="live")
        screen = app.screen
        assert isinstance(screen, ProcessesScreen)
        table = screen.query_one(ProcessesTable)
        await select(pilot, table, sleeper.pid)
        await until(pilot, lambda: "k / K disabled" in str(screen.query_one("#notice").render()), what="notice")
        assert screen.check_action("signal", ("TERM",)) is None
        await pilot.press("k", "K", "y")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ProcessesScreen)  # no confirmation was offered
        assert sleeper.poll() is None
