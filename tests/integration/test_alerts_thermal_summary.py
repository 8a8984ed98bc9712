"""The thermal-critical built-in and the morning summary, on real agents.

thermal-critical: a fake sysfs tree (SPARKDECK_SYSFS_ROOT) whose zone temperature file the test
rewrites; the rule reads the collector's ``critical_margin_c`` and names the zone that fired.
The summary: a rule due at the next minute, delivered through Apprise json:// to a local
http.server receiver; the body carries what ran, the alerts, the incidents and the energy.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from agent.protocol import AlertFrame, AlertList
from tests.helpers.calls import call, next_frame, open_stream, wait_for
from tests.helpers.notify import Receiver, alerts_toml
from tests.helpers.sysfs import fake_sysfs


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


def _next_minute(lead_s: float) -> str:
    """HH:MM of the first whole local minute at least lead_s from now (the summary rule takes HH:MM)."""
    t = time.localtime(time.time() + lead_s + 60)
    return f"{t.tm_hour:02d}:{t.tm_min:02d}"


@pytest.mark.docker
def test_morning_summary_reaches_the_receiver_with_runs_alerts_incidents_and_energy(tmp_path, receiver, docker_engine):
    from agent import statefiles
    from tests.helpers.agent import launch_agent

    state = tmp_path / "state"
    statefiles.ensure_dir(state)
    env = {"SPARKDECK_BOOT_ID_FILE": str(tmp_path / "boot_id")}
    (tmp_path / "boot_id").write_text("boot-a\n")
    # a first run killed with SIGKILL: the second run records an agent-crash incident at start
    first = launch_agent(state, "--simulate", "gb10", "--interval", "0.2", env=env)
    try:
        time.sleep(2.0)
    finally:
        first.proc.kill()
        first.proc.wait(10)
    at = _next_minute(25)  # the agent starts and a job runs before it is due
    cfg = tmp_path / "agent.toml"
    rules = [
        {"name": "incident", "event": "incident", "severity": "warning"},
        {"name": "container-exited", "event": "container_exit", "severity": "warning"},
        {"name": "morning", "event": "summary", "at": at, "severity": "info"},
    ]
    cfg.write_text(alerts_toml(rules, f"json://127.0.0.1:{receiver.port}/hook", "info"))
    agent = launch_agent(state, "--simulate", "gb10", "--interval", "0.2", "--config", str(cfg), env=env, tokens=(first.read_token, first.control_token))
    try:
        name = f"sdk-summary-{docker_engine.session}"
        docker_engine.run("--label", "sparkdeck.watch=1", docker_engine.image, "sh", "-c", "echo hi; sleep 2; exit 3", name=name)
        wait_for(
            lambda: any(
                a["rule"] == "container-exited" and a["subject"] == name for a in call(agent, "GET", "/api/v1/alerts", agent.read_token).json()["recent"]
            ),
            30,
            "the job's end",
        )
        bodies = lambda: [b for _, b in receiver.got if "morning" in b.get("title", "")]  # noqa: E731
        wait_for(bodies, 150, f"the summary due at {at}")
        body = bodies()[0]
        print("\nsummary body:\n" + body["message"])
        msg = body["message"]
        # the engine is shared: another run's watched containers may have ended too, so "contains"
        assert f"{name} (exit 3)" in msg.split("ended: ", 1)[1].split("\n", 1)[0]  # what ran
        assert "incident ×1" in msg.split("alerts: ", 1)[1]  # the alerts since the last one, by rule (ended jobs are listed above)
        assert "incidents: 1" in msg
        assert "GPU energy: " in msg and "n/a" not in msg and "kWh" in msg  # the fake NVML's energy counter
        summary = [a for a in call(agent, "GET", "/api/v1/alerts", agent.read_token).json()["recent"] if a["rule"] == "morning"][0]
        figures = summary["details"]["summary"]
        assert figures["incidents"] == 1 and figures["alerts"] == {"incident": 1} and figures["energy_j"] > 0
        assert [j["exit_code"] for j in figures["ended"] if j["name"] == name] == [3]
        assert (state / "summary.json").stat().st_mode & 0o777 == 0o600
    finally:
        agent.proc.kill()
        agent.proc.wait(10)
