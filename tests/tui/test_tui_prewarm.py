"""The detail screen is built off-stage once the cursor rests on an overview card, so `d` shows it without a layout.

Counts, not time (bench/tui_detail.py has the milliseconds): a cold open lays the screen out three or
more times; a prewarmed one at most once, and shows the same cells. Detail screens kept composed are
bounded: a fleet does not keep one per machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from textual.screen import Screen

from tests.helpers.tui import prewarmed, until
from tests.helpers.tui_fakes import app_for, gpu_gb10, snapshot_frame, spark_client
from tui import app as app_module
from tui.client import AgentClient, Target
from tui.screens.machine import MachineScreen
from tui.screens.overview import OverviewScreen

SIZE = (160, 48)


@contextmanager
def counting_layouts() -> Iterator[list[str]]:
    """The class name of every screen Textual lays out meanwhile."""
    seen: list[str] = []
    orig = Screen._refresh_layout

    def counted(self, size=None, scroll=False):
        seen.append(type(self).__name__)
        return orig(self, size, scroll)

    Screen._refresh_layout = counted
    try:
        yield seen
    finally:
        Screen._refresh_layout = orig


def cells(app) -> str:
    """The screen as an SVG without the per-export ids."""
    return re.sub(r"terminal-\d+", "terminal", app.export_screenshot())


async def test_prewarmed_detail_opens_without_a_layout_and_shows_the_same() -> None:
    cold = app_for([spark_client()], "overview")
    cold._prewarm_broken = True  # no off-stage build: the open a press meets right after a cursor move
    async with cold.run_test(size=SIZE) as pilot:
        with counting_layouts() as layouts:
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(cold.screen, MachineScreen)
        assert layouts.count("MachineScreen") >= 3  # the cost the prewarm takes off the key press
        await pilot.pause(0.3)
        cold_cells = cells(cold)

    warm = app_for([spark_client()], "overview")
    async with warm.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: prewarmed(warm), 5, "detail screen built off-stage")
        assert isinstance(warm.screen, OverviewScreen) and len(warm.screen_stack) == 2  # the default screen + overview
        assert warm.get_screen("detail-0") not in warm.screen_stack
        with counting_layouts() as layouts:
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(warm.screen, MachineScreen)
        assert layouts.count("MachineScreen") <= 1
        await pilot.pause(0.3)
        assert cells(warm) == cold_cells


async def test_a_frame_after_the_prewarm_is_shown_on_open() -> None:
    app = app_for([spark_client()], "overview")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: prewarmed(app), 5, "detail screen built off-stage")
        assert "77" not in gpu_text(app.get_screen("detail-0"))
        cl = app.clients[0]
        gpu = gpu_gb10(cl.last_seq + 1)
        gpu["temperature_c"] = 77.0
        cl.handle_frame(snapshot_frame(cl.last_seq + 1, "spark-01", [gpu], None))
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause(0.3)
        assert "77" in gpu_text(app.screen)


def gpu_text(screen: Screen) -> str:
    return "\n".join(str(w.render()) for w in screen.query("GpuPanel Figures"))


def many_clients(n: int) -> list[AgentClient]:
    out = []
    for i in range(n):
        cl = AgentClient(Target(f"box-{i}", f"http://box-{i}:8611", "t"))
        cl.handle_frame(snapshot_frame(1, f"box-{i}", [gpu_gb10(1)], None))
        out.append(cl)
    return out


async def test_detail_screens_kept_are_bounded() -> None:
    app = app_for(many_clients(app_module.MAX_DETAIL_SCREENS + 3), "overview")
    async with app.run_test(size=SIZE) as pilot:
        opened: list[MachineScreen] = []
        for i in range(len(app.clients)):
            app.current = i
            app.action_view("detail")
            await pilot.pause()
            assert isinstance(app.screen, MachineScreen) and app.screen.index == i
            opened.append(app.screen)
            app.action_view("overview")
            await pilot.pause()
        await pilot.pause(0.2)
        installed = [n for n in app._installed_screens if n.startswith("detail-")]
        assert len(installed) <= app_module.MAX_DETAIL_SCREENS
        assert f"detail-{len(app.clients) - 1}" in installed  # the latest opened is kept
        gone = [s for s in opened if f"detail-{s.index}" not in installed]
        assert gone and not any(s.is_running for s in gone)  # let go and removed, not left running
        app.current = 0  # one let go opens again, built anew
        app.action_view("detail")
        await pilot.pause()
        assert isinstance(app.screen, MachineScreen) and app.screen.index == 0 and app.screen is not opened[0]


async def test_a_failing_prewarm_is_given_up_and_d_still_opens() -> None:
    app = app_for([spark_client()], "overview")

    def broken(name):
        raise AttributeError("Textual moved _get_screen")

    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen), 5, "overview")
        app._get_screen = broken  # the prewarm's private call (the first tick that may prewarm is a second away)
        await until(pilot, lambda: app._prewarm_broken, 5, "prewarm given up")
        del app._get_screen  # the class's own again, which push_screen uses too
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, MachineScreen), 5, "detail screen")
        assert not app._prewarming


async def test_only_the_card_the_cursor_rests_on_is_prewarmed() -> None:
    app = app_for(many_clients(3), "overview")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: prewarmed(app, 0), 5, "the first card's detail screen built")
        await pilot.press("down", "down")  # over card 1 to card 2 faster than PREWARM_REST_S
        await until(pilot, lambda: prewarmed(app, 2), 5, "the resting card's detail screen built")
        assert not app.is_screen_installed("detail-1")
        assert isinstance(app.screen, OverviewScreen)


async def test_prewarming_never_pushes_out_a_screen_the_user_opened() -> None:
    app = app_for(many_clients(app_module.MAX_DETAIL_SCREENS + 2), "overview")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: prewarmed(app, 0), 5, "the first card's detail screen built")
        await pilot.press("enter")  # open machine 0: now a screen the user opened
        await until(pilot, lambda: isinstance(app.screen, MachineScreen), 5, "detail 0")
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen), 5, "overview")
        for i in range(1, app_module.MAX_DETAIL_SCREENS + 2):  # rest on every other card in turn
            await pilot.press("down")
            await until(pilot, lambda i=i: prewarmed(app, i), 5, f"card {i} prewarmed")
        assert app.is_screen_installed("detail-0")  # the guesses went first
        assert len([n for n in app._installed_screens if n.startswith("detail-")]) <= app_module.MAX_DETAIL_SCREENS
    app = app_for(many_clients(app_module.MAX_DETAIL_SCREENS + 1), "overview")
    async with app.run_test(size=SIZE) as pilot:
        for i in range(app_module.MAX_DETAIL_SCREENS):  # the user opens four machines
            app.current = i
            app.action_view("detail")
            await pilot.pause()
        app.current = app_module.MAX_DETAIL_SCREENS
        app.action_view("overview")
        await until(pilot, lambda: isinstance(app.screen, OverviewScreen), 5, "overview")
        await pilot.pause(1.5)  # the cursor rests on the fifth card
        assert not app.is_screen_installed(f"detail-{app_module.MAX_DETAIL_SCREENS}")
        assert all(app.is_screen_installed(f"detail-{i}") for i in range(app_module.MAX_DETAIL_SCREENS))
