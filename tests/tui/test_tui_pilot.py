"""The Textual app driven by Pilot against real agent processes (fake NVML scenarios)."""

from __future__ import annotations

import asyncio
import time

import httpx
from rich.text import Text

from tests.helpers.agent import launch_agent
from tests.helpers.tui import until
from tui import client as c
from tui import format as fmt
from tui.app import SparkdeckApp
from tui.client import Backoff, Target
from tui.screens.containers import ContainersScreen
from tui.screens.help import HelpScreen
from tui.screens.machine import MachineScreen
from tui.screens.models import ModelsScreen
from tui.screens.overview import OverviewScreen
from tui.widgets.conn_bar import ConnBar
from tui.widgets.cpu_panel import CpuPanel
from tui.widgets.gpu_panel import GpuPanel
from tui.widgets.history_charts import HostCharts
from tui.widgets.machine_card import MachineCard


def plain(widget) -> str:
    return widget.render().plain


async def stored_samples(agent, metric: str, timeout: float = 30.0) -> None:
    """Until the agent's history store answers some samples of ``metric``."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(headers=agent.headers(agent.read_token), timeout=10) as http:
        while time.monotonic() < deadline:
            r = await http.get(agent.url + "/api/v1/history", params={"metrics": metric, "from": int(time.time()) - 60})
            if r.status_code == 200 and r.json()["series"].get(metric, {}).get("ts"):
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"no stored {metric} samples within {timeout}s")


async def test_detail_fills_in_with_na_reasons_and_history(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    app = SparkdeckApp([Target("spark", agent.url, agent.control_token)])
    async with app.run_test(size=(100, 40)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MachineScreen) and app.screen.query(GpuPanel), what="GPU panel")
        client = app.clients[0]
        await until(pilot, lambda: len(client.history) >= 3, what="history")
        await pilot.pause(0.3)
        panel = app.screen.query_one(GpuPanel)
        figures = panel.figures
        await until(pilot, lambda: "power_limit_w" in figures.shown, what="GPU figures")
        assert figures.text("power_limit_w") == "Limit n/a" and figures.is_na("power_limit_w")
        assert "Not Supported" in str(figures.reason("power_limit_w"))  # the reason, on hover and on `a`
        assert "unified" in figures.text("memory")
        assert "%" in figures.text("utilization_gpu_percent") and figures.reason("utilization_gpu_percent") is None
        assert "total" in plain(app.screen.query_one(CpuPanel))
        assert "live" in plain(app.screen.query_one("#conn", ConnBar))
        assert app.ui_updates <= client.frames  # collapsed, never more refreshes than frames

        await pilot.press("c")
        assert isinstance(app.screen, ContainersScreen)
        await pilot.press("m")
        assert isinstance(app.screen, ModelsScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("o")
        assert isinstance(app.screen, OverviewScreen)
        card = app.screen.query_one(MachineCard)
        await until(pilot, lambda: "GPU0" in plain(card), what="card")
        text = plain(card)
        assert "unified" in text and "Noise" in text and "live" in text
        await pilot.press("enter")  # the focused card opens its detail
        await pilot.pause(0.1)
        assert isinstance(app.screen, MachineScreen)


async def test_read_token_disables_actions_and_says_why(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    app = SparkdeckApp([Target("spark", agent.url, agent.read_token)], start_view="containers")
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.clients[0].state == c.LIVE and app.clients[0].latest is not None, what="live")
        await pilot.pause(0.2)
        screen = app.screen
        assert isinstance(screen, ContainersScreen)
        assert screen.check_action("container", ("stop",)) is None  # shown disabled in the footer
        notice = str(screen.query_one("#notice").render())
        assert "actions disabled" in notice and "read" in notice
        screen.action_container("stop")  # e.g. from the command palette: refused with the reason
        await pilot.pause(0.1)
        assert any("'read' scope" in str(n.message) for n in app._notifications)
        await pilot.press("m")
        assert app.screen.check_action("launch", ()) is None
    control = SparkdeckApp([Target("spark", agent.url, agent.control_token)], start_view="containers")
    async with control.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: control.clients[0].state == c.LIVE, what="live")
        assert control.screen.check_action("container", ("stop",)) is True


async def test_agent_killed_and_restarted_shows_reconnecting_stale_then_live(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    client = c.AgentClient(Target("spark", agent.url, agent.control_token), backoff=Backoff(base_s=0.2, cap_s=1.0))
    app = SparkdeckApp(clients=[client])
    async with app.run_test(size=(100, 30)) as pilot:
        bar = lambda: plain(app.screen.query_one("#conn", ConnBar))  # noqa: E731
        await until(pilot, lambda: client.state == c.LIVE and client.frames >= 3, what="live")
        agent.proc.kill()
        agent.proc.wait(10)
        await until(pilot, lambda: "reconnecting" in bar() and "STALE" in bar(), what="reconnecting + stale")
        await until(pilot, lambda: app.screen.has_class("-stale"), what="stale styling")  # at the next (throttled) refresh
        again = launch_agent(agent.state_dir, "--simulate", "gb10", "--interval", "0.2", port=agent.port, tokens=(agent.read_token, agent.control_token))
        try:
            await until(pilot, lambda: client.state == c.LIVE and "live" in bar() and "STALE" not in bar(), what="live again")
            await until(pilot, lambda: not app.screen.has_class("-stale"), what="stale styling gone")  # at the next (throttled) refresh
            frames = client.frames
            await until(pilot, lambda: client.frames > frames + 2, what="fresh frames")
        finally:
            again.proc.kill()
            again.proc.wait(10)


async def test_overview_with_several_agents_and_one_bad_token(start_agent):
    a = start_agent("--simulate", "gb10", "--interval", "0.2")
    b = start_agent("--simulate", "h200x2", "--interval", "0.2")
    # both agents report this machine's hostname: the cards are told apart by the user's names, and a repeated name gets a number
    app = SparkdeckApp([Target("spark", a.url, a.read_token), Target("h200", b.url, b.read_token), Target("h200", b.url, "wrong")])
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: [cl.state for cl in app.clients] == [c.LIVE, c.LIVE, c.AUTH_FAILED], what="states")
        await pilot.pause(0.3)
        cards = list(app.screen.query(MachineCard))
        assert len(cards) == 3
        await until(pilot, lambda: "GPU1" in plain(cards[1]) and "auth failed" in plain(cards[2]), what="cards filled")
        host = app.clients[0].agent_hostname
        titles = [f"spark ({host})", f"h200 ({host})", "h200 #2"]
        # a card's text also moves on with the 1 s tick, its title with the next frame it is shown: wait for both
        await until(pilot, lambda: [Text.from_markup(str(card.border_title)).plain for card in cards] == titles, what="titles")
        assert "GPU1" in plain(cards[1]) and "unified" not in plain(cards[1])
        gpus = app.clients[1].latest["gpus"]  # the memory bar covers both GPUs, and the host's RAM shows too
        total = fmt.size(sum(g["memory"]["total_bytes"] for g in gpus))
        assert f"/{total} GPU" in plain(cards[1]) and "\nRAM " in plain(cards[1])
        bad = plain(cards[2])  # which machine, what to do: not the agent's HTTP words
        assert "auth failed" in bad and "h200 #2 rejected the token" in bad and f"sparkdeck hosts add h200 {b.url} --token" in bad
        assert "401" not in bad and "Bearer" not in bad
        await pilot.press("right_square_bracket")
        assert isinstance(app.screen, OverviewScreen) and app.current == 1
        await pilot.press("d")
        assert isinstance(app.screen, MachineScreen) and app.screen.index == 1
        await until(pilot, lambda: len(app.screen.query(GpuPanel)) == 2, what="two GPU panels")
        assert str(app.screen.query_one(ConnBar).render()).startswith(f"● h200 ({host})  live")


async def test_chart_range_reads_the_agent_history(start_agent):
    agent = start_agent("--simulate", "h100", "--interval", "0.2")
    for metric in ("gpu0.power_w", "cpu.percent", "memory.percent", "net.rx_bytes_s", "disk.write_bytes_s"):
        # awaited, not slept: the event loop stays free; every series the test reads (a rate is first
        # stored with the agent's second sample, so the first rows can hold power and not net or disk)
        await stored_samples(agent, metric)
    app = SparkdeckApp([Target("spark", agent.url, agent.read_token)])
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, MachineScreen) and app.screen.query(GpuPanel), what="GPU panel")
        screen = app.screen
        assert isinstance(screen, MachineScreen)
        assert screen.query_one(GpuPanel).border_subtitle == "charts: live (h)"
        await pilot.press("h")
        await until(pilot, lambda: screen._stored is not None, what="stored series")
        power = screen._stored["gpu0.power_w"]
        assert power and all(v is not None for _, v in power) and all(a < b for (a, _), (b, _) in zip(power, power[1:], strict=False))
        for name in ("cpu.percent", "memory.percent", "net.rx_bytes_s", "disk.write_bytes_s"):  # `h` changes the host charts too
            assert screen._stored.get(name), name
        await until(pilot, lambda: screen.query_one(GpuPanel).border_subtitle == "charts: 1 h (h)", what="range label")
        cpu = screen.query_one(HostCharts).charts[0]
        await until(pilot, lambda: cpu.points is screen._stored["cpu.percent"], what="CPU chart drawn from the store")
        assert round(cpu.end - cpu.start) == 3600 and "-1h" in plain(cpu) and "now" in plain(cpu)
        for _ in range(3):
            await pilot.press("h")
        assert screen.query_one(GpuPanel).border_subtitle == "charts: live (h)" and screen._stored is None


async def test_r_reconnects_at_once_instead_of_waiting_out_the_backoff(start_agent):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    client = c.AgentClient(Target("spark", agent.url, agent.control_token), backoff=Backoff(base_s=120.0, cap_s=120.0))  # next try ≥ 60 s away
    app = SparkdeckApp(clients=[client])
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: client.state == c.LIVE and client.frames >= 2, what="live")
        agent.proc.kill()
        agent.proc.wait(10)
        await until(pilot, lambda: client.state == c.RECONNECTING and client.next_try_at is not None, what="reconnecting, waiting out the backoff")
        assert client.next_try_at - time.time() > 30
        again = launch_agent(agent.state_dir, "--simulate", "gb10", "--interval", "0.2", port=agent.port, tokens=(agent.read_token, agent.control_token))
        try:
            await pilot.pause(1.0)
            assert client.state == c.RECONNECTING  # the agent is back, but the client still waits
            await pilot.press("r")
            await until(pilot, lambda: client.state == c.LIVE, timeout=15, what="live after r")  # well inside the ≥ 60 s wait
            assert "reconnecting now" in [n.message for n in app._notifications]
        finally:
            again.proc.kill()
            again.proc.wait(10)
