"""The fleet table (`t` on the overview): one row per machine for a dozen machines, sorted busiest first, Enter opens one."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from tests.helpers.tui_fakes import SIZES, app_for, clock, gpu_h200, hello, snapshot_frame
from tui.client import AgentClient, Target
from tui.screens.fleet import FleetScreen
from tui.screens.machine import MachineScreen
from tui.screens.overview import OverviewScreen


def dozen() -> list[AgentClient]:
    out = []
    for n in range(12):
        cl = AgentClient(Target(f"node-{n:02d}", f"http://10.0.0.{n + 10}:8611", "t"), clock=clock)
        cl.handle_frame(hello(f"node-{n:02d}"))
        gpu = gpu_h200(0, 1, 40.0 + 3 * n) | {"utilization_gpu_percent": (n * 37) % 100}
        cl.handle_frame(snapshot_frame(1, f"node-{n:02d}", [gpu], []))
        out.append(cl)
    return out


def column(table, key: str) -> list[str]:
    return [str(table.get_cell(row.key, key)) for row in table.ordered_rows]


async def test_fleet_table_sorts_and_opens_a_machine():
    app = app_for(dozen(), "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("t")
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        table = screen.query_one("#fleet", DataTable)
        assert table.row_count == 12 and column(table, "name")[:2] == ["node-00", "node-01"]
        await pilot.press("S")  # next column: GPU util, busiest first
        utils = [int(u.rstrip("%")) for u in column(table, "util")]
        assert utils == sorted(utils, reverse=True) and "▼" in str(table.columns["util"].label)
        busiest = column(table, "name")[0]
        table.move_cursor(row=0)  # the cursor stayed on node-00 through the sort
        await pilot.press("enter")
        assert isinstance(app.screen, MachineScreen) and app.clients[app.screen.index].target.name == busiest
        await pilot.press("t")
        await pilot.press("t")  # and back to the cards
        assert isinstance(app.screen, OverviewScreen)


async def test_a_frame_updates_only_its_row():
    clients = dozen()
    app = app_for(clients, "overview")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("t")
        table = app.screen.query_one("#fleet")
        gpu = gpu_h200(0, 2, 91.0)
        clients[3].handle_frame(snapshot_frame(2, "node-03", [gpu], []))
        await pilot.pause(0.3)
        assert column(table, "temp")[3] == "91 °C" and column(table, "temp")[4] == "52 °C"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fleet_table_snapshot(snap_compare, size):
    async def open_table(pilot):
        await pilot.press("t")
        await pilot.press("S")

    assert snap_compare(app_for(dozen(), "overview"), terminal_size=size, run_before=open_table)
