"""What the user sees is what is true (issue 18): a model found running after an agent restart,
its endpoint, `stopping…` at once, a stale or unreachable machine on the detail screen."""

from __future__ import annotations

import re
import uuid

import pytest
from textual.widgets import Static

from tests.helpers.agent import free_port
from tests.helpers.calls import call, model_state, wait_for
from tests.helpers.tui import select_model, until
from tui import client as c
from tui.app import SparkdeckApp
from tui.client import Target
from tui.screens.confirm import ConfirmScreen
from tui.screens.containers import ContainersScreen
from tui.screens.launch import LaunchScreen
from tui.screens.machine import MachineScreen
from tui.screens.models import ModelsScreen
from tui.widgets.containers_table import ContainersTable
from tui.widgets.cpu_panel import CpuPanel


def catalog(image: str, port: int) -> str:
    return f"""
[[model]]
name = "sdtest-truth"
image = "{image}"
command = ["httpd", "-f", "-p", "8080", "-h", "/www"]
ports = {{ "8080/tcp" = {port} }}
health = {{ port = "8080/tcp", path = "/health" }}
endpoint = "/v1"
startup_timeout_s = 60
"""


@pytest.mark.docker
async def test_a_model_running_before_an_agent_restart_shows_running_and_its_endpoint(docker_engine, start_agent, tmp_path):
    port = free_port()
    models = tmp_path / "models.toml"
    models.write_text(catalog(docker_engine.image, port))
    first = start_agent("--simulate", "gb10", "--interval", "0.25", "--models", str(models))
    try:
        assert call(first, "POST", "/api/v1/models/sdtest-truth/start", first.control_token).status_code == 202
        wait_for(lambda: model_state(first, "sdtest-truth")["state"] == "ready", 60, "ready")
        first.stop()  # the container keeps running; the next agent finds it
        agent = start_agent("--simulate", "gb10", "--interval", "0.25", "--models", str(models))
        copied: list[str] = []
        app = SparkdeckApp([Target("spark", agent.url, agent.control_token)], start_view="models")
        app.copy_to_clipboard = copied.append  # type: ignore[assignment]  # no terminal clipboard under the test runner
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await select_model(app, pilot, "sdtest-truth")

            def row() -> tuple:
                return next(r for r in screen.rows() if r[0]["name"] == "sdtest-truth")

            await until(pilot, lambda: row()[1] == "running", what="running after the restart")
            await pilot.press("y")
            assert copied == [f"http://127.0.0.1:{port}/v1"]  # the API, not …/health
            await pilot.press("l")  # launching again is not offered as if it were idle
            assert isinstance(app.screen, ModelsScreen) and not isinstance(app.screen, LaunchScreen)
            assert any(n.title == "already running" and "x stops it" in n.message for n in app._notifications)
            await pilot.press("x")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await pilot.pause()
            assert row()[1] == "stopping…" and row()[2] == ""  # at once, before the engine has stopped it
            await until(pilot, lambda: row()[1] == "stopped", timeout=30, what="stopped")
            copied.clear()
            await pilot.press("y")
            assert copied == []  # a stopped model has no endpoint
            detail = str(screen.query_one("#model-detail", Static).render())
            assert "stopped: stopped" not in detail and "stopped on request" in detail  # said once
    finally:
        docker_engine.cli("rm", "-f", "sparkdeck-sdtest-truth", check=False)


async def test_detail_screen_says_stale_and_dims_it(start_agent):
    agent = start_agent("--simulate", "h200x2", "--interval", "0.2")
    app = SparkdeckApp([Target("h200", agent.url, agent.read_token)], start_view="detail")
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MachineScreen) and app.clients[0].latest is not None, what="data")
        screen = app.screen
        assert "STALE" not in str(screen.query_one("#gpu-status", Static).render())
        agent.stop()
        await until(pilot, lambda: app.clients[0].stale, what="connection lost")
        await until(pilot, lambda: "STALE" in str(screen.query_one("#gpu-status", Static).render()), what="STALE on the detail screen")
        assert screen.has_class("-stale")
        assert screen.query_one(CpuPanel).styles.text_opacity < 1  # the panels are dimmed, not just the top line


async def test_an_unreachable_machine_gets_one_message_in_words():
    port = free_port()  # nothing listens there
    app = SparkdeckApp([Target("lab", f"http://127.0.0.1:{port}", "t")], start_view="detail")
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MachineScreen) and app.clients[0].state == c.RECONNECTING, what="first failure")
        screen = app.screen
        await pilot.pause(0.2)
        text = str(screen.query_one("#gpu-status", Static).render())
        assert f"connection refused: nothing listens on 127.0.0.1:{port}" in text and f"http://127.0.0.1:{port}" in text
        assert "Errno" not in text
        assert not screen.query_one("#panels").display  # no six "no data" boxes


@pytest.mark.docker
async def test_containers_show_exit_codes_the_real_state_after_start_a_summary_and_keyboard_sort(docker_engine, start_agent):
    tag = uuid.uuid4().hex[:8]
    dies, busy, idle = f"sdt-dies-{tag}", f"sdt-busy-{tag}", f"sdt-idle-{tag}"
    docker_engine.run(docker_engine.image, "sh", "-c", "sleep 0.3; exit 3", name=dies)  # exits with 3; started again, it dies again
    docker_engine.run(docker_engine.image, "sh", "-c", "while :; do :; done", name=busy)  # one busy core
    docker_engine.run(docker_engine.image, "sleep", "300", name=idle)
    try:
        agent = start_agent("--simulate", "gb10", "--interval", "0.25")
        app = SparkdeckApp([Target("spark", agent.url, agent.control_token)], start_view="containers")
        toasts: list[tuple[str, str]] = []
        notify = app.notify
        app.notify = lambda message, **kw: toasts.append((kw.get("title", ""), message)) or notify(message, **kw)  # every toast, even expired ones
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.screen
            assert isinstance(screen, ContainersScreen)
            table = screen.query_one(ContainersTable)

            def cell(name: str, column: str) -> str:
                key = next(k for k, r in table.by_id.items() if r.get("name") == name)
                return str(table.get_cell(key, column))

            await until(pilot, lambda: any(r.get("name") == dies and r.get("exit_code") == 3 for r in table.by_id.values()), what="exit code in the frame")
            assert re.fullmatch(r"exited \(3\) \d+s ago", cell(dies, "state")), cell(dies, "state")
            notice = str(screen.query_one("#notice", Static).render())
            assert re.search(r"\d+ running, \d+ exited(, \d+ \w+)*   CPU ([\d.]+%|n/a)   GPU memory", notice), notice

            def cpu(name: str) -> float:
                value = next((r.get("cpu_percent") for r in table.by_id.values() if r.get("name") == name), None)
                return -1.0 if value is None else float(value)

            await until(pilot, lambda: cpu(idle) >= 0 and cpu(busy) > cpu(idle) + 5, what="busy figures")
            assert table.sort_key == "name"
            await pilot.press("S", "S")  # name -> state -> CPU%: the busiest first
            assert table.sort_key == "cpu_percent" and table.sort_reverse
            figures = [r["cpu_percent"] for r in table.by_id.values() if r.get("cpu_percent") is not None]  # the engine is shared: others' rows too
            assert figures == sorted(figures, reverse=True) and table.by_id[next(iter(table.by_id))]["cpu_percent"] >= cpu(busy)
            assert "CPU% ▼" in str(table.columns["cpu_percent"].label)
            await pilot.press("V")  # reversed: the idlest first, the arrow turns
            assert not table.sort_reverse and "CPU% ▲" in str(table.columns["cpu_percent"].label)
            figures = [r["cpu_percent"] for r in table.by_id.values() if r.get("cpu_percent") is not None]
            assert figures == sorted(figures) and table.by_id[next(iter(table.by_id))]["cpu_percent"] <= cpu(idle)

            key = next(k for k, r in table.by_id.items() if r.get("name") == dies)
            table.move_cursor(row=table.get_row_index(key))
            await pilot.pause()
            await pilot.press("s")  # the agent answers running; it dies 0.3 s later: the toast says what the stream shows
            await until(pilot, lambda: any(title == f"start {dies} failed" for title, _ in toasts), timeout=15, what="start toast")
            message = next(m for title, m in toasts if title == f"start {dies} failed")
            assert "exited (3)" in message and "ended right after starting" in message, message
    finally:
        docker_engine.cli("rm", "-f", dies, busy, idle, check=False)
