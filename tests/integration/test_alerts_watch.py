"""Watched jobs on a real agent and a real Docker engine: a busybox container that exits is notified
with its exit code, run time and last log lines (secrets masked); watching needs a control token,
is audited, never restarts the container, and the watch set is a 0600 file in the state dir."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.protocol import AlertFrame, AlertList
from tests.helpers.calls import call, next_frame, open_stream, wait_for

pytestmark = pytest.mark.docker

SECRET = "tok-9d8c7b6a5f4e"


def _exit_alert(agent, name: str, timeout: float) -> dict:
    async def run() -> dict:
        async with open_stream(agent, agent.control_token) as ws:
            return await next_frame(
                ws, lambda f: f["type"] == "alert" and f["rule"] == "container-exited" and f["subject"] == name, timeout, f"{name}'s exit alert"
            )

    return asyncio.run(run())


def test_marked_container_end_is_alerted(start_agent, docker_engine, tmp_path):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    name = f"sdk-watch-{docker_engine.session}"
    script = "echo starting job; echo API_TOKEN=$API_TOKEN; echo step one; sleep 6; echo done; exit 3"
    cid = docker_engine.run("-e", f"API_TOKEN={SECRET}", docker_engine.image, "sh", "-c", script, name=name)
    wait_for(
        lambda: any(c["name"] == name and c["state"] == "running" for c in call(agent, "GET", "/api/v1/containers", agent.read_token).json()["containers"]),
        20,
        "the container in the list",
    )
    started_at = docker_engine.cli("inspect", "-f", "{{.State.StartedAt}}", cid)

    assert call(agent, "POST", f"/api/v1/containers/{name}/watch", agent.read_token).status_code == 403
    r = call(agent, "POST", f"/api/v1/containers/{name}/watch", agent.control_token)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": cid[:12], "name": name, "watched": True}
    assert docker_engine.cli("inspect", "-f", "{{.State.StartedAt}}", cid) == started_at  # not restarted
    watches = agent.state_dir / "watches.json"
    assert cid in json.loads(watches.read_text()) and watches.stat().st_mode & 0o777 == 0o600
    audit = call(agent, "GET", "/api/v1/audit", agent.control_token).json()["entries"]
    assert any(e["action"] == "watch" and e["target"] == name and e["result"] == "ok" for e in audit)

    frame = _exit_alert(agent, name, 30)
    alert = AlertFrame.model_validate(frame)
    d = alert.details
    assert alert.state == "event" and d.exit_code == 3 and d.watched == "marked" and d.container_id == cid[:12]
    assert 4 <= d.run_s <= 30
    assert d.gpu_time_s is not None and d.throttled_s is not None
    assert d.log_tail[0] == "starting job" and d.log_tail[-1] == "done"
    assert "API_TOKEN=***" in d.log_tail
    assert "exited with code 3" in alert.message
    # a read token sees the alert, not the log lines
    listing = AlertList.model_validate(call(agent, "GET", "/api/v1/alerts", agent.read_token).json())
    mine = next(a for a in listing.recent if a.subject == name)
    assert mine.details.exit_code == 3 and mine.details.log_tail is None
    assert SECRET not in agent.log() and SECRET not in json.dumps(frame)
    assert cid not in json.loads(watches.read_text())  # ended: the mark is dropped


def test_labelled_container_is_watched_without_marking(start_agent, docker_engine):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    name = f"sdk-watchlabel-{docker_engine.session}"
    docker_engine.run("--label", "sparkdeck.watch=1", docker_engine.image, "sh", "-c", "echo hi; sleep 2; exit 0", name=name)
    alert = AlertFrame.model_validate(_exit_alert(agent, name, 30))
    assert alert.details.exit_code == 0 and alert.details.watched == "label"


def test_watch_refuses_bad_input(start_agent, docker_engine):
    agent = start_agent("--simulate", "gb10", "--interval", "0.5")
    r = call(agent, "POST", "/api/v1/containers/no-such-container-xyz/watch", agent.control_token)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = call(agent, "POST", "/api/v1/containers/bad%20name/watch", agent.control_token)
    assert r.status_code == 400 and r.json()["error"] == "bad_container"
    name = f"sdk-watchdone-{docker_engine.session}"
    docker_engine.run(docker_engine.image, "true", name=name)
    wait_for(lambda: docker_engine.cli("inspect", "-f", "{{.State.Status}}", name) == "exited", 20, "it to exit")
    r = call(agent, "POST", f"/api/v1/containers/{name}/watch", agent.control_token)
    assert r.status_code == 409 and r.json()["error"] == "not_running"


def test_sparkdeck_watch_cli(start_agent, docker_engine):
    import subprocess
    import sys

    from tests.helpers.agent import ROOT

    agent = start_agent("--simulate", "gb10", "--interval", "0.5")
    name = f"sdk-watchcli-{docker_engine.session}"
    cid = docker_engine.run(docker_engine.image, "sleep", "60", name=name)
    wait_for(lambda: docker_engine.cli("inspect", "-f", "{{.State.Status}}", name) == "running", 20, "it to run")

    def cli(*args: str, token: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "tui.cli", "watch", agent.url, name, "--token", token, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )

    denied = cli(token=agent.read_token)
    assert denied.returncode == 1 and "403" in denied.stderr
    ok = cli(token=agent.control_token)
    assert ok.returncode == 0, ok.stderr
    assert f"watching {name}" in ok.stdout
    assert cid in json.loads((agent.state_dir / "watches.json").read_text())
    off = cli("--off", token=agent.control_token)
    assert off.returncode == 0 and cid not in json.loads((agent.state_dir / "watches.json").read_text())


def test_marked_container_that_ended_while_the_agent_was_down(start_agent, docker_engine, tmp_path):
    state = tmp_path / "keep"
    agent = start_agent("--simulate", "gb10", "--interval", "0.5", state_dir=state)
    name = f"sdk-watchdown-{docker_engine.session}"
    cid = docker_engine.run(docker_engine.image, "sh", "-c", "echo bye; sleep 4; exit 7", name=name)
    wait_for(lambda: call(agent, "POST", f"/api/v1/containers/{name}/watch", agent.control_token).status_code == 200, 20, "the watch")
    assert agent.stop() == 0
    wait_for(lambda: docker_engine.cli("inspect", "-f", "{{.State.Status}}", name) == "exited", 30, "it to exit")
    again = start_agent("--simulate", "gb10", "--interval", "0.5", state_dir=state, tokens=(agent.read_token, agent.control_token))

    def ended() -> object:
        recent = call(again, "GET", "/api/v1/alerts", again.control_token).json()["recent"]
        return next((a for a in recent if a["subject"] == name and a["rule"] == "container-exited"), None)

    alert = wait_for(ended, 30, "the exit alert after the restart")
    assert alert["details"]["exit_code"] == 7 and alert["details"]["log_tail"] == ["bye"]
    assert cid not in json.loads((state / "watches.json").read_text())


def test_silent_watched_log_is_stalled_then_resolved(start_agent, docker_engine, tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text('[[alerts.rule]]\nname = "job-stalled"\nevent = "log_silent"\nfor_s = 3\nseverity = "warning"\n')
    agent = start_agent("--simulate", "gb10", "--interval", "0.5", "--config", str(cfg))
    name = f"sdk-watchquiet-{docker_engine.session}"
    docker_engine.run("--label", "sparkdeck.watch", docker_engine.image, "sh", "-c", "echo working; sleep 9; echo again; sleep 60", name=name)

    async def run() -> list[dict]:
        async with open_stream(agent, agent.control_token) as ws:
            first = await next_frame(ws, lambda f: f["type"] == "alert" and f["rule"] == "job-stalled" and f["subject"] == name, 30, "a stalled alert")
            second = await next_frame(ws, lambda f: f["type"] == "alert" and f["rule"] == "job-stalled" and f["subject"] == name, 30, "its resolution")
            return [first, second]

    fired, resolved = (AlertFrame.model_validate(f) for f in asyncio.run(run()))
    assert fired.state == "firing" and "stalled?" in fired.message
    assert resolved.state == "resolved" and resolved.id == fired.id and "logging again" in resolved.message
