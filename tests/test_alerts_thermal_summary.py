"""The thermal-critical built-in and the morning summary, on real agents.

thermal-critical: a fake sysfs tree (SPARKDECK_SYSFS_ROOT) whose zone temperature file the test
rewrites; the rule reads the collector's ``critical_margin_c`` and names the zone that fired.
The summary: a rule due at the next minute, delivered through Apprise json:// to a local
http.server receiver; the body carries what ran, the alerts, the incidents and the energy.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from agent.protocol import AlertFrame, AlertList
from containers_helpers import call, next_frame, open_stream, wait_for
from test_alerts_notify import Receiver
from test_thermal_events import fake_sysfs


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_thermal_zone_near_its_critical_trip_fires_then_resolves(start_agent, tmp_path):
    root = fake_sysfs(tmp_path / "sys")  # thermal_zone0: critical trip 105 °C, now 71.5 °C
    agent = start_agent("--simulate", "gb10", "--interval", "0.2", env={"SPARKDECK_SYSFS_ROOT": str(root)})
    h = {"Authorization": f"Bearer {agent.read_token}"}
    zone0 = lambda: httpx.get(agent.url + "/api/v1/snapshot", headers=h).json()["host"]["thermal_zones"][0]  # noqa: E731
    wait_for(lambda: zone0()["critical_margin_c"] == 33.5, 15, "the margin in the snapshot")
    rules = {r["name"]: r for r in call(agent, "GET", "/api/v1/alerts", agent.read_token).json()["rules"]}
    assert rules["thermal-critical"]["metric"] == "host.thermal_zones.*.critical_margin_c" and rules["thermal-critical"]["severity"] == "critical"

    async def run() -> tuple[dict, dict]:
        async with open_stream(agent, agent.control_token) as ws:
            (root / "class/thermal/thermal_zone0/temp").write_text("101500\n")  # 3.5 °C short of the trip
            fired = await next_frame(ws, lambda f: f["type"] == "alert" and f["rule"] == "thermal-critical", 30, "thermal-critical firing")
            (root / "class/thermal/thermal_zone0/temp").write_text("80000\n")
            resolved = await next_frame(ws, lambda f: f["type"] == "alert" and f["rule"] == "thermal-critical" and f["state"] == "resolved", 30, "it resolving")
            return fired, resolved

    fired, resolved = asyncio.run(run())
    alert = AlertFrame.model_validate(fired)
    assert alert.state == "firing" and alert.severity == "critical" and alert.value == 3.5 and alert.threshold == 5
    assert alert.subject == "host.thermal_zones.thermal_zone0.critical_margin_c"  # the zone by its sysfs name
    assert "thermal_zone0" in alert.message
    assert resolved["id"] == fired["id"]
    listing = AlertList.model_validate(call(agent, "GET", "/api/v1/alerts", agent.read_token).json())
    assert not [a for a in listing.firing if a.rule == "thermal-critical"]
    # thermal_zone1 has only a "hot" trip and thermal_zone10 no reading: their margins are null, never fire
    assert not [a for a in listing.recent if a.rule == "thermal-critical" and "thermal_zone1" in (a.subject or "")]
