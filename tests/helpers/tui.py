"""Driving the real TUI under Textual's pilot: wait for a condition (with the toasts on failure), see what repaints,
feed snapshot frames, open the detail screen, pick a model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import DataTable

from tests.helpers.tui_fakes import CONTAINERS, NOW, gpu_gb10, snapshot_frame
from tui import client as c
from tui.screens.machine import MachineScreen
from tui.screens.models import ModelsScreen


async def until(pilot, pred, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            notes = [f"{n.title}: {n.message}" for n in pilot.app._notifications]
            raise AssertionError(f"timed out waiting for {what}; notifications: {notes}")
        await pilot.pause(0.05)


class Refreshed(NamedTuple):
    widget: Widget
    regions: tuple[Region, ...]  # empty: the whole widget
    layout: bool


@contextmanager
def refreshes() -> Iterator[list[Refreshed]]:
    """Every ``Widget.refresh`` made inside the block, in order (each still refreshes)."""
    seen: list[Refreshed] = []
    refresh = Widget.refresh

    def spy(self, *regions, **kw):
        seen.append(Refreshed(self, regions, bool(kw.get("layout"))))
        return refresh(self, *regions, **kw)

    Widget.refresh = spy
    try:
        yield seen
    finally:
        Widget.refresh = refresh


async def frames(app, pilot, cl, seqs) -> None:
    """Snapshot frames ``seqs`` of one GB10 (the app's clock at each frame's second), each handled and painted."""
    for seq in seqs:
        app.clock = lambda s=seq: float(NOW - 120 + s)
        before = app.ui_updates
        cl.handle_frame(snapshot_frame(seq, "spark-01", [gpu_gb10(seq)], CONTAINERS))
        await until(pilot, lambda b=before: app.ui_updates > b, what="the frame handled")
        await pilot.pause()


async def open_detail(app, pilot, cl):
    """One frame in, then ``d``: the machine detail screen and its scrolling body."""
    await frames(app, pilot, cl, [121])
    await pilot.press("d")
    await until(pilot, lambda: isinstance(app.screen, MachineScreen))
    return app.screen, app.screen.query_one("#detail")


def prewarmed(app, index: int = 0) -> bool:
    """Machine ``index``'s detail screen has been built off-stage (and the build is over)."""
    name = f"detail-{index}"
    return app.is_screen_installed(name) and app.get_screen(name).is_running and not app._prewarming


async def select_model(app, pilot, name: str) -> ModelsScreen:
    """The Models screen, live, with the cursor on ``name`` (the catalog also holds the built-ins)."""
    screen = app.screen
    assert isinstance(screen, ModelsScreen)
    table = screen.query_one(DataTable)
    await until(pilot, lambda: table.row_count >= 1 and app.clients[0].state == c.LIVE, what="catalog")
    table.move_cursor(row=table.get_row_index(name))
    await pilot.pause()
    return screen
