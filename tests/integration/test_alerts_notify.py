"""Alert rules on a real agent, delivered through Apprise's json:// to a real local HTTP receiver.

The receiver is an http.server thread on a free loopback port; it can answer 200, answer 500,
or hang. The notify URL carries a secret resolved from the agent's secrets.env: it must reach
the receiver (in the path) and never appear in the agent's log, frames, /api/v1/info or alerts.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import statefiles
from agent.protocol import AlertFrame, AlertList, Info
from tests.helpers.agent import ROOT, free_port
from tests.helpers.calls import call, next_frame, open_stream, wait_for
from tests.helpers.notify import Receiver, alerts_toml

SECRET = "s3cr3t-hook-7f1e2d"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _config(tmp_path: Path, port: int, extra: str = "") -> tuple[Path, Path]:
    state = tmp_path / "state"
    statefiles.ensure_dir(state)
    statefiles.write_file(state / "secrets.env", f"HOOK_SECRET={SECRET}\n".encode())
    cfg = tmp_path / "agent.toml"
    rule = {"name": "gpu-warm", "metric": "gpus.*.temperature_c", "op": ">=", "value": 0, "for_s": 0.5, "severity": "critical"}
    cfg.write_text(alerts_toml([rule], f"json://127.0.0.1:{port}/hook/${{HOOK_SECRET}}", extra=extra))
    return cfg, state


def test_alert_fires_and_reaches_the_receiver(start_agent, receiver, tmp_path):
    cfg, state = _config(tmp_path, receiver.port)
    agent = start_agent("--simulate", "gb10", "--interval", "0.2", "--config", str(cfg), state_dir=state)

    async def run() -> dict:
        async with open_stream(agent, agent.control_token) as ws:
            return await next_frame(ws, lambda f: f["type"] == "alert", 20, "an alert frame")

    frame = asyncio.run(run())
    alert = AlertFrame.model_validate(frame)
    assert alert.rule == "gpu-warm" and alert.state == "firing" and alert.severity == "critical"
    assert alert.subject == "gpus.0.temperature_c" and alert.threshold == 0
    wait_for(lambda: receiver.got, 20, "the notification at the receiver")
    path, body = receiver.got[0]
    assert path == f"/hook/{SECRET}"  # the ${VAR} was resolved from secrets.env
    assert "gpu-warm" in body["title"] and body["type"] == "failure"
    assert "gpus.0.temperature_c" in body["message"]

    listing = call(agent, "GET", "/api/v1/alerts", agent.read_token)
    assert listing.status_code == 200
    parsed = AlertList.model_validate(listing.json())
    assert [a.rule for a in parsed.firing] == ["gpu-warm"]
    info = call(agent, "GET", "/api/v1/info", agent.read_token)
    Info.model_validate(info.json())
    assert info.json()["alerts"]["notify"]["sent"] >= 1
    assert info.json()["alerts"]["notify"]["targets"][0]["target"] == "json://…#1"
    for text in (json.dumps(frame), listing.text, info.text, agent.log()):
        assert SECRET not in text
    # one firing alert: the rule does not re-notify while it keeps firing
    time.sleep(1.5)
    assert len(receiver.got) == 1


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_failing_receiver_costs_nothing_but_its_retries(start_agent, receiver, tmp_path, mode):
    receiver.mode = mode
    extra = "retries = 2\nretry_backoff_s = 0.2\ntimeout_s = 1\n"
    cfg, state = _config(tmp_path, receiver.port, extra)
    agent = start_agent("--simulate", "gb10", "--interval", "0.2", "--config", str(cfg), state_dir=state)

    async def count_snapshots() -> tuple[int, float]:
        async with open_stream(agent) as ws:
            await next_frame(ws, lambda f: f["type"] == "snapshot", 10, "a snapshot")
            start, n = time.monotonic(), 0
            while time.monotonic() - start < 4:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                n += frame["type"] == "snapshot"
            return n, time.monotonic() - start

    wait_for(lambda: receiver.hits, 20, "a delivery attempt")
    n, spent = asyncio.run(count_snapshots())  # while deliveries fail and retry
    print(f"\n{mode}: {n} snapshots in {spent:.1f}s at 0.2 s (rate {n / spent:.1f}/s) while delivery failed")
    assert n >= 10  # generous: 20 expected; a blocked loop would give ~0
    wait_for(
        lambda: json.loads((state / "notify-status.json").read_text())["failed"] >= 1 if (state / "notify-status.json").exists() else False,
        30,
        "the failure recorded",
    )
    time.sleep(1)
    assert 1 <= receiver.hits <= 3  # one alert: the first try and 2 retries, no more
    status = json.loads((state / "notify-status.json").read_text())
    assert status["last_error"]["target"] == "json://…#1"
    assert (state / "notify-status.json").stat().st_mode & 0o777 == 0o600
    doctor = subprocess.run(
        [sys.executable, "-m", "agent.cli", "doctor", "--config", str(cfg), "--state-dir", str(state), "--simulate", "gb10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "last delivery to json://…#1 failed" in doctor.stdout, doctor.stdout
    logs = agent.log()
    assert "notification to json://…#1 failed" in logs
    for text in (logs, doctor.stdout, status.__repr__()):
        assert SECRET not in text


def test_notify_test_command(receiver, tmp_path):
    cfg, state = _config(tmp_path, receiver.port)
    res = subprocess.run(
        [sys.executable, "-m", "agent.cli", "notify", "test", "--config", str(cfg), "--state-dir", str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "sent  json://…#1" in res.stdout and SECRET not in res.stdout + res.stderr
    assert receiver.got and "test" in receiver.got[0][1]["title"]
    receiver.mode = "500"
    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace('min_severity = "warning"', 'min_severity = "warning"\nretries = 0'))
    res = subprocess.run(
        [sys.executable, "-m", "agent.cli", "notify", "test", "--config", str(bad), "--state-dir", str(state)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1 and "FAILED  json://…#1" in res.stdout


def test_dashboard_client_loads_alerts_that_fired_before_it_connected(start_agent, tmp_path):
    from tui.alerts import agent_alerts
    from tui.client import AgentClient, Target

    cfg, state = _config(tmp_path, free_port())
    agent = start_agent("--simulate", "gb10", "--interval", "0.2", "--config", str(cfg), state_dir=state)
    wait_for(lambda: call(agent, "GET", "/api/v1/alerts", agent.read_token).json()["firing"], 20, "the alert to fire")

    async def run() -> dict:
        cl = AgentClient(Target("a", agent.url, agent.read_token))
        task = asyncio.create_task(cl.run())
        try:
            for _ in range(100):
                if cl.agent_alerts:
                    return dict(cl.agent_alerts)
                await asyncio.sleep(0.1)
            return {}
        finally:
            task.cancel()
            await cl.close()

    got = asyncio.run(run())
    (alert,) = got.values()
    assert alert["rule"] == "gpu-warm" and alert["state"] == "firing"
    shown = agent_alerts(got.values(), time.time())
    assert shown and shown[0].severity == "critical" and "gpu-warm" in shown[0].message


def test_built_in_rules_memory_short_and_the_guard_acting(start_agent):
    # a reserve larger than the machine: memory for models is negative from the first sample, and the
    # guard (on for a simulated GB10; scoped to this session's label, so it finds nothing to stop) acts
    agent = start_agent("--simulate", "gb10", "--interval", "0.2", env={"SPARKDECK_MEMORY__RESERVE_GIB": "1000"})
    want = {"memory-short", "memory-guard"}

    def listing() -> AlertList:
        return AlertList.model_validate(call(agent, "GET", "/api/v1/alerts", agent.read_token).json())

    wait_for(lambda: want <= {a.rule for a in listing().recent}, 30, "both alerts")
    got = {a.rule: a for a in reversed(listing().recent)}
    short, guard = got["memory-short"], got["memory-guard"]
    assert short.state == "firing" and short.severity == "critical" and short.value < 0 and short.threshold == 0
    assert short in listing().firing
    assert guard.state == "event" and guard.details.result in ("nothing-eligible", "warned", "stopped", "failed")
