"""Thermal zones from a fake sysfs tree (sysfs_root) and GPU throttle events with start and end,
against a real agent process; the fake NVML's throttle reasons come from a file the test rewrites."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from agent.collectors.thermal import ThermalZones
from agent.history.events import ThrottleEvents
from agent.protocol import EventList, Snapshot
from tests.helpers.calls import wait_for
from tests.helpers.sysfs import fake_sysfs


def test_thermal_zones_unit(tmp_path):
    root = fake_sysfs(tmp_path / "sys")
    zones = ThermalZones(str(root)).read()
    assert [z["zone"] for z in zones] == ["thermal_zone0", "thermal_zone1", "thermal_zone10"]  # numeric order
    assert zones[0] == {
        "zone": "thermal_zone0",
        "type": "cpu-thermal",
        "temp_c": 71.5,
        "trips": [{"type": "passive", "temp_c": 95.0}, {"type": "critical", "temp_c": 105.0}],
        "critical_margin_c": 33.5,
    }
    assert zones[1]["critical_margin_c"] is None  # a "hot" trip only: no critical trip to measure from
    assert zones[2]["temp_c"] is None and zones[2]["trips"] == [] and zones[2]["critical_margin_c"] is None
    (root / "class/thermal/thermal_zone0/temp").write_text("99000\n")
    assert ThermalZones(str(root)).read()[0]["temp_c"] == 99.0


def test_events_unit_open_close_and_unknown_keeps_open():
    ev = ThrottleEvents()

    def frame(ts, reasons, status="ok"):
        return {"ts": ts, "gpus": [{"index": 0, "uuid": "GPU-x", "status": status, "throttle_reasons": reasons}]}

    ev.note_frame(frame(1.0, ["gpu_idle"]))
    assert not ev.recent  # idle is not throttling
    ev.note_frame(frame(2.0, ["sw_power_cap", "hw_thermal_slowdown"]))
    ev.note_frame(frame(3.0, None))  # unknown: nothing closes on a guess
    ev.note_frame(frame(4.0, ["hw_thermal_slowdown"], status="error"))
    ev.note_frame(frame(5.0, ["hw_thermal_slowdown"]))
    ev.note_frame(frame(6.0, []))
    got = {(e["reason"], e["start"], e["end"]) for e in ev.recent}
    assert got == {("sw_power_cap", 2.0, 5.0), ("hw_thermal_slowdown", 2.0, 6.0)}


def test_thermal_zones_and_throttle_events_live(start_agent, tmp_path):
    root = fake_sysfs(tmp_path / "sys")
    reasons = tmp_path / "throttle"
    reasons.write_text("")
    env = {"SPARKDECK_SYSFS_ROOT": str(root), "SPARKDECK_SIMULATE_THROTTLE_FILE": str(reasons)}
    agent = start_agent("--simulate", "gb10", "--interval", "0.1", env=env)
    h = agent.headers(agent.read_token)

    snap = httpx.get(agent.url + "/api/v1/snapshot", headers=h).json()
    Snapshot.model_validate(snap)  # extra fields forbidden: the zones are in the model
    zones = {z["zone"]: z for z in snap["host"]["thermal_zones"]}
    assert zones["thermal_zone0"]["type"] == "cpu-thermal" and zones["thermal_zone0"]["trips"][1] == {"type": "critical", "temp_c": 105.0}
    (root / "class/thermal/thermal_zone0/temp").write_text("96250\n")
    wait_for(lambda: httpx.get(agent.url + "/api/v1/snapshot", headers=h).json()["host"]["thermal_zones"][0]["temp_c"] == 96.2)
    m = httpx.get(agent.url + "/metrics", headers=h).text
    assert 'sparkdeck_thermal_zone_celsius{type="cpu-thermal",zone="thermal_zone0"} 96.2' in m
    assert 'sparkdeck_thermal_trip_celsius{trip="1:critical",type="cpu-thermal",zone="thermal_zone0"} 105.0' in m

    def events(**params):
        r = httpx.get(agent.url + "/api/v1/events", params={"kind": "throttle", **params}, headers=h)
        assert r.status_code == 200, r.text
        return EventList.model_validate(r.json()).model_dump()["events"]

    assert events() == []
    t0 = time.time()
    reasons.write_text("hw_thermal_slowdown,sw_power_cap\n")
    open_ = wait_for(lambda: [e for e in events() if e["end"] is None] if len(events()) == 2 else None)
    assert {e["reason"] for e in open_} == {"hw_thermal_slowdown", "sw_power_cap"} and all(e["gpu"] == 0 for e in open_)
    time.sleep(0.5)
    reasons.write_text("sw_power_cap\n")
    wait_for(lambda: any(e["end"] is not None for e in events()))
    reasons.write_text("")
    done = wait_for(lambda: (lambda ev: ev if all(e["end"] is not None for e in ev) else None)(events()))
    by = {e["reason"]: e for e in done}
    assert t0 - 1 <= by["hw_thermal_slowdown"]["start"] < by["hw_thermal_slowdown"]["end"] < by["sw_power_cap"]["end"]
    assert by["hw_thermal_slowdown"]["end"] - by["hw_thermal_slowdown"]["start"] >= 0.4
    # what the machine screen's timeline asks for, through the TUI's own client
    from tui.client import AgentClient, Target

    got, start, end = asyncio.run(AgentClient(Target("t", agent.url, agent.read_token)).throttle_events(600))
    assert {e["reason"] for e in got} == {"hw_thermal_slowdown", "sw_power_cap"} and end - start == pytest.approx(600)
    # the range selects overlapping events only
    assert events(**{"from": t0 - 100, "to": t0 - 50}) == []
    assert [e["reason"] for e in events(**{"from": by["sw_power_cap"]["end"], "to": time.time()})] == ["sw_power_cap"]
    bad = httpx.get(agent.url + "/api/v1/events", params={"kind": "nope"}, headers=h)
    assert bad.status_code == 400 and bad.json()["error"] == "bad_kind"
    assert httpx.get(agent.url + "/api/v1/events", params={"from": 10, "to": 5}, headers=h).json()["error"] == "bad_range"
    assert httpx.get(agent.url + "/api/v1/events").status_code == 401

    # stored in history: an event open when the agent stops is closed at its last frame after a restart
    reasons.write_text("hw_slowdown\n")
    wait_for(lambda: any(e["reason"] == "hw_slowdown" for e in events()))
    agent.proc.terminate()
    agent.proc.wait(10)
    again = start_agent(
        "--simulate",
        "gb10",
        "--interval",
        "0.1",
        env={**env, "SPARKDECK_SIMULATE_THROTTLE_FILE": str(tmp_path / "none")},
        state_dir=agent.state_dir,
        tokens=(agent.read_token, agent.control_token),
    )
    r = httpx.get(again.url + "/api/v1/events", headers=again.headers(again.read_token)).json()["events"]
    assert {e["reason"] for e in r} == {"hw_thermal_slowdown", "sw_power_cap", "hw_slowdown"}
    slow = next(e for e in r if e["reason"] == "hw_slowdown")
    assert slow["end"] is not None and slow["end"] >= slow["start"]
    assert len({e["id"] for e in r}) == 3


def test_doctor_reads_the_configured_sysfs_root(tmp_path):
    import json
    import os
    import subprocess
    import sys

    root = fake_sysfs(tmp_path / "sys", temp_mc=88000)
    env = {**os.environ, "SPARKDECK_SYSFS_ROOT": str(root)}
    env.pop("SPARKDECK_CONFIG", None)
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "doctor", "--json", "--simulate", "gb10", "--state-dir", str(tmp_path / "s")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    checks = {c["name"]: c for c in json.loads(out.stdout)}
    assert checks["thermal"]["detail"] == "3 thermal zone(s); hottest cpu-thermal 88.0 °C"
    # the fake tree has no hwmon: the sensors check falls back to its zones (2 readable), not the real /sys
    assert checks["sensors"]["detail"].startswith("2 temperature, 0 fan, 0 power")
