"""What the user sees is what is true (issue 18): a model found running after an agent restart,
its endpoint, `stopping…` at once, a stale or unreachable machine on the detail screen."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from tests.helpers.agent import free_port
from tests.helpers.calls import call, model_state, wait_for
from tests.helpers.tui import select_model, until
from tui import client as c
from tui.app import SparkdeckApp
from tui.client import Target
from tui.screens.confirm import ConfirmScreen
from tui.screens.launch import LaunchScreen
from tui.screens.machine import MachineScreen
from tui.screens.models import ModelsScreen
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
        app.copy_to_clipboard = copied.append  # no terminal clipboard under the test runner
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
