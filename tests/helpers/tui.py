"""Driving the real TUI under Textual's pilot: wait for a condition (with the toasts on failure), pick a model."""

from __future__ import annotations

import time

from textual.widgets import DataTable

from tui import client as c
from tui.screens.models import ModelsScreen


async def until(pilot, pred, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            notes = [f"{n.title}: {n.message}" for n in pilot.app._notifications]
            raise AssertionError(f"timed out waiting for {what}; notifications: {notes}")
        await pilot.pause(0.05)


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
