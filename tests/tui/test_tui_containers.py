"""The client's container and model actions round-trip through a real agent and Docker engine."""

from __future__ import annotations

import uuid

import httpx
import pytest
from textual.widgets import Input, RichLog

from tests.helpers.agent import free_port
from tests.helpers.tui import select_model, until
from tui import client as c
from tui.app import SparkdeckApp
from tui.client import Target
from tui.screens.confirm import ConfirmScreen
from tui.screens.containers import ContainersScreen
from tui.screens.launch import LaunchScreen
from tui.screens.logs import LogsScreen
from tui.widgets.containers_table import ContainersTable

pytestmark = pytest.mark.docker


def row_state(app, name: str) -> str | None:
    snap = app.clients[0].latest or {}
    return next((x["state"] for x in snap.get("containers") or [] if x["name"] == name), None)


async def select(pilot, table: ContainersTable, name: str) -> None:
    await until(pilot, lambda: any(r.get("name") == name for r in table.by_id.values()), what=f"{name} in the table")
    key = next(k for k, r in table.by_id.items() if r.get("name") == name)
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause()
    assert table.selected()["name"] == name


async def test_stop_start_and_logs_round_trip(docker_engine, start_agent):
    name = f"sdt-tui-{uuid.uuid4().hex[:8]}"
    cid = docker_engine.run(docker_engine.image, "sh", "-c", "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done", name=name)
    agent = start_agent("--simulate", "gb10", "--interval", "0.25")
    app = SparkdeckApp([Target("spark", agent.url, agent.control_token)], start_view="containers")
    async with app.run_test(size=(120, 36)) as pilot:
        await until(pilot, lambda: app.clients[0].state == c.LIVE and row_state(app, name) == "running", what="running row")
        assert isinstance(app.screen, ContainersScreen)
        table = app.screen.query_one(ContainersTable)
        await select(pilot, table, name)

        await pilot.press("x")  # stop asks first
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # cancel: nothing happens
        assert isinstance(app.screen, ContainersScreen)
        assert docker_engine.cli("inspect", "-f", "{{.State.Status}}", name) == "running"
        await pilot.press("x")
        await pilot.press("y")
        await until(pilot, lambda: row_state(app, name) == "exited", what="exited in the stream")
        assert docker_engine.cli("inspect", "-f", "{{.State.Status}}", name) == "exited"
        # the stream can show the new state before the action's own answer (and its notification) arrives
        await until(pilot, lambda: any("stop " + name in str(n.message) for n in app._notifications), what="stop notification")

        await select(pilot, table, name)
        await pilot.press("s")  # start needs no confirmation
        await until(pilot, lambda: row_state(app, name) == "running", what="running again")

        await select(pilot, table, name)
        await pilot.press("l")
        assert isinstance(app.screen, LogsScreen)
        log = app.screen.query_one(RichLog)
        await until(pilot, lambda: len(log.lines) >= 3, what="tail lines")
        before = len(log.lines)
        await until(pilot, lambda: len(log.lines) > before + 2, what="followed lines")  # the follow stream keeps adding
        assert "tick-" in "".join(str(line.text) for line in log.lines)
        await pilot.press("escape")
        assert isinstance(app.screen, ContainersScreen)

        await select(pilot, table, name)
        await pilot.press("D")  # remove a running container: confirmed, then forced
        assert isinstance(app.screen, ConfirmScreen) and "force" in str(app.screen.question)
        await pilot.press("y")
        await until(pilot, lambda: row_state(app, name) is None, what="row gone")
    assert docker_engine.cli("ps", "-aq", "--filter", f"name=^/{name}$") == ""
    entries = httpx.get(agent.url + "/api/v1/audit", headers=agent.headers(agent.control_token)).json()["entries"]
    assert [(e["action"], e["result"], e.get("detail")) for e in entries if e["target"] == cid[:12]] == [
        ("stop", "ok", None),
        ("start", "ok", None),
        ("remove", "ok", "force"),
    ]


async def test_an_engine_error_is_shown_not_raised(docker_engine, start_agent):
    name = f"sdt-tui-{uuid.uuid4().hex[:8]}"
    docker_engine.run(docker_engine.image, "sleep", "300", name=name)
    docker_engine.cli("pause", name)  # the engine refuses to start a paused container
    agent = start_agent("--simulate", "gb10", "--interval", "0.25")
    app = SparkdeckApp([Target("spark", agent.url, agent.control_token)], start_view="containers")
    shown = []
    app.notify = lambda message, **kw: shown.append((kw.get("severity"), kw.get("title"), message))  # notifications expire; keep them
    async with app.run_test(size=(120, 36)) as pilot:
        table = app.screen.query_one(ContainersTable)
        await select(pilot, table, name)
        await pilot.press("s")
        await until(pilot, lambda: any(sev == "error" for sev, _, _ in shown), what="error notification")
        sev, title, message = next(n for n in shown if n[0] == "error")
        assert title == f"start {name} failed" and "paused" in message
        assert row_state(app, name) == "paused"
    docker_engine.cli("rm", "-f", name)


async def test_model_launch_form_to_ready_and_stop(docker_engine, start_agent, tmp_path):
    port = free_port()
    models = tmp_path / "models.toml"
    models.write_text(
        f"""
[[model]]
name = "sdtest-tui"
description = "busybox httpd playing a model server"
image = "{docker_engine.image}"
command = ["httpd", "-f", "-p", "8080", "-h", "{{root}}"]
params = {{ root = "/www" }}
ports = {{ "8080/tcp" = {free_port()} }}
health = {{ port = "8080/tcp", path = "/health" }}
endpoint = "/v1"
startup_timeout_s = 60
"""
    )
    agent = start_agent("--simulate", "gb10", "--interval", "0.25", "--models", str(models))
    app = SparkdeckApp([Target("spark", agent.url, agent.control_token)], start_view="models")
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await select_model(app, pilot, "sdtest-tui")
            await pilot.press("l")
            assert isinstance(app.screen, LaunchScreen)
            app.screen.query_one("#port", Input).value = str(port)  # a port of our choosing
            await pilot.press("ctrl+s")
            assert app.screen is screen

            def row():
                return next(r for r in screen.rows() if r[0]["name"] == "sdtest-tui")

            phases = []
            await until(pilot, lambda: phases.append(row()[1]) or row()[1] == "ready", timeout=60, what="ready")
            # The agent may go starting -> ready within milliseconds (busybox answers at once) and the
            # stream is latest-wins, so "starting" need not reach the screen; what must hold is that the
            # row only ever moves forward through the launch and never shows a failure on the way.
            order = ["idle", "pulling", "starting", "ready"]
            assert set(phases) <= set(order), phases
            assert [order.index(p) for p in phases] == sorted(order.index(p) for p in phases), phases
            # the API endpoint (template `endpoint`, the port chosen in the form), not the health URL; the row can turn
            # ready from the snapshot's container a moment before the model_state frame with the endpoint is handled
            await until(pilot, lambda: row()[2] == f"http://127.0.0.1:{port}/v1", timeout=10, what=f"the endpoint on port {port}")
            assert screen.selected()["name"] == "sdtest-tui"
            await pilot.press("x")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await until(pilot, lambda: row()[1] in ("stopped", "idle"), timeout=30, what="stopped")
        assert docker_engine.cli("ps", "-q", "--filter", "name=^/sparkdeck-sdtest-tui$") == ""  # no longer running
    finally:  # a failure midway must not leave the model running: the next run's launch would be refused
        docker_engine.cli("rm", "-f", "sparkdeck-sdtest-tui", check=False)


@pytest.mark.parametrize(
    "status, seconds",
    [
        ("Up Less than a second", 0),
        ("Up 1 second", 1),
        ("Up 42 seconds", 42),
        ("Up About a minute", 60),
        ("Up 5 minutes (healthy)", 300),
        ("Up About an hour", 3600),
        ("Up 3 hours (Paused)", 3 * 3600),
        ("Up 2 days", 2 * 86400),
        ("Up 3 weeks", 3 * 7 * 86400),
        ("Exited (137) 2 minutes ago", None),
        ("Restarting (1) 5 seconds ago", None),
        ("", None),
    ],
)
def test_uptime_sorts_by_the_engines_status_when_the_frame_has_no_start_time(status, seconds) -> None:
    from tui.widgets.containers_table import sort_value, status_age_s, uptime

    assert status_age_s(status) == seconds
    row = {"state": "running" if seconds is not None else "exited", "status": status}
    assert uptime(row, 1e9) == seconds
    # the frame's container rows carry no created/started time: sorting by uptime still orders them
    assert sort_value(row, "uptime", 1e9) == ((1, 0, "") if seconds is None else (0, seconds, ""))
