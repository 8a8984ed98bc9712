"""Incidents after an unclean end, against real agent processes: SIGKILL, clean SIGTERM, a
changed boot id; the REST route, the hello count, the CLI and the TUI screen."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time

import httpx
import websockets
from textual.widgets import DataTable

from agent.protocol import Hello, IncidentList
from tests.helpers.agent import ROOT, RunningAgent, launch_agent
from tests.helpers.calls import wait_for
from tests.helpers.tui import until
from tui.app import SparkdeckApp
from tui.client import AgentClient, Backoff, Target
from tui.screens.incidents import IncidentsScreen

GiB = 1024**3


def incidents(agent: RunningAgent, token: str | None = None) -> dict:
    r = httpx.get(agent.url + "/api/v1/incidents", headers=agent.headers(token or agent.read_token), timeout=10)
    assert r.status_code == 200, r.text
    return IncidentList.model_validate(r.json()).model_dump()


def hello(agent: RunningAgent) -> dict:
    async def first() -> dict:
        async with websockets.connect(agent.ws_url, additional_headers=agent.headers(agent.read_token)) as ws:
            return json.loads(await ws.recv())

    frame = asyncio.run(first())
    Hello.model_validate(frame)  # extra fields forbidden
    return frame


def snapshot(agent: RunningAgent) -> dict:
    return httpx.get(agent.url + "/api/v1/snapshot", headers=agent.headers(agent.read_token), timeout=10).json()


def relaunch(prev: RunningAgent, *args: str, env: dict | None = None) -> RunningAgent:
    return launch_agent(prev.state_dir, *args, env=env, tokens=(prev.read_token, prev.control_token))


def test_sigkill_leaves_an_agent_crash_incident_with_the_last_samples_and_containers(tmp_path, docker_engine):
    # a container that really holds memory: tail keeps the newline-free 300 MB it reads
    name = f"sd-incident-{os.getpid()}"
    docker_engine.run(docker_engine.image, "sh", "-c", "head -c 300m /dev/zero | tail", name=name)
    env = {"SPARKDECK_BOOT_ID_FILE": str(tmp_path / "boot_id")}
    (tmp_path / "boot_id").write_text("boot-a\n")
    agent = launch_agent(tmp_path / "state", "--simulate", "gb10", "--interval", "0.2", env=env)
    try:
        wait_for(
            lambda: any(c["name"] == name and (c["memory_bytes"] or 0) > 250 * 2**20 for c in snapshot(agent)["containers"]),
            what="the container holding its memory in frames",
        )
        time.sleep(2.0)
        seen = snapshot(agent)
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
        again = relaunch(agent, "--simulate", "gb10", "--interval", "0.2", env=env)
    finally:
        if agent.proc.poll() is None:
            agent.proc.kill()
    try:
        body = incidents(again)
        assert len(body["incidents"]) == 1 and body["kept"] >= 10
        inc = body["incidents"][0]
        assert inc["kind"] == "agent-crash"
        samples = inc["samples"]
        assert len(samples) >= 10  # 2 s and more at 5 Hz
        ts = [s["ts"] for s in samples]
        assert ts == sorted(ts) and inc["last_sample_ts"] == ts[-1]
        assert ts[-1] >= seen["ts"]  # the samples reach the kill
        assert ts[-1] - ts[0] <= inc["window_s"] == 120
        assert all(s["gpus"] and s["gpus"][0]["temperature_c"] is not None for s in samples)
        # figures are the extremes of the samples; a healthy simulated run has no likely cause
        fig = inc["figures"]
        assert fig["min_available_bytes"] == min(s["available_bytes"] for s in samples)
        assert fig["max_temperature_c"] == max(s["hottest_c"] for s in samples)
        assert fig["min_models_available_bytes"] == min(s["models_available_bytes"] for s in samples)
        assert inc["cause"] == "unknown", inc["cause_text"]
        box = next(c for c in inc["containers"] if c["name"] == name)
        assert box["image"] == docker_engine.image and box["memory_bytes"] > 250 * 2**20
        assert hello(again)["incidents"] == 1
        for f in ("incidents.json", "run.json"):
            assert stat.S_IMODE((again.state_dir / f).stat().st_mode) == 0o600
        # the route needs a token; read is enough
        assert httpx.get(again.url + "/api/v1/incidents", timeout=10).status_code == 401
        assert httpx.get(again.url + "/api/v1/incidents", headers=again.headers("sdk_wrong"), timeout=10).status_code == 401
        short = httpx.get(again.url + "/api/v1/incidents?samples=false", headers=again.headers(again.read_token), timeout=10).json()
        assert short["incidents"][0]["samples"] == [] and short["incidents"][0]["cause_text"] == inc["cause_text"]

        # the client CLI: --json is the agent's IncidentList; the text names the kind
        cli = [sys.executable, "-m", "tui.cli", "incidents", again.url, "--token", again.read_token]
        out = subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        assert IncidentList.model_validate_json(out.stdout).incidents[0].id == inc["id"]
        text = subprocess.run(cli, capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert text.returncode == 0 and "agent-crash" in text.stdout and name in text.stdout
        denied = subprocess.run([*cli[:-1], "sdk_wrong"], capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert denied.returncode == 3 and "auth failed" in denied.stderr
    finally:
        again.stop()


def test_clean_stop_leaves_no_incident_and_incidents_survive_restarts(tmp_path):
    env = {"SPARKDECK_BOOT_ID_FILE": str(tmp_path / "boot_id")}
    (tmp_path / "boot_id").write_text("boot-a\n")
    agent = launch_agent(tmp_path / "state", "--simulate", "gb10", "--interval", "0.2", env=env)
    time.sleep(1.0)
    assert agent.stop(signal.SIGTERM) == 0
    before_second = time.time()
    second = relaunch(agent, "--simulate", "gb10", "--interval", "0.2", env=env)
    assert incidents(second)["incidents"] == [] and hello(second)["incidents"] == 0
    time.sleep(1.0)
    # the box reboots under a running agent: the next start sees a new boot id
    second.proc.send_signal(signal.SIGKILL)
    second.proc.wait(10)
    (tmp_path / "boot_id").write_text("boot-b\n")
    third = relaunch(second, "--simulate", "gb10", "--interval", "0.2", env=env)
    try:
        (inc,) = incidents(third)["incidents"]
        assert inc["kind"] == "host-reboot" and inc["samples"]
        assert inc["run_started"] >= before_second  # the second run's start, not the first's
        assert all(s["ts"] >= inc["run_started"] - 1 for s in inc["samples"])  # only the crashed run's samples
    finally:
        assert third.stop(signal.SIGTERM) == 0
    fourth = relaunch(third, "--simulate", "gb10", "--interval", "0.2", env=env)
    try:
        kept = incidents(fourth)["incidents"]
        assert [i["id"] for i in kept] == [inc["id"]] and hello(fourth)["incidents"] == 1
    finally:
        fourth.stop()


async def test_incidents_screen_on_key_i_against_a_real_agent(tmp_path):
    state = tmp_path / "state"
    first = launch_agent(state, "--simulate", "gb10", "--interval", "0.2")
    await asyncio.sleep(1.0)  # a second of samples before the kill; awaited, the event loop stays free
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    agent = relaunch(first, "--simulate", "gb10", "--interval", "0.2")
    again = None
    try:
        client = AgentClient(Target("spark", agent.url, agent.read_token), backoff=Backoff(base_s=0.2, cap_s=1.0))
        app = SparkdeckApp(clients=[client])
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: client.hello is not None, what="hello")
            await pilot.press("i")
            screen = app.screen
            assert isinstance(screen, IncidentsScreen)
            await until(pilot, lambda: screen.query_one("#incidents", DataTable).row_count == 1, what="one incident row")
            detail = str(screen.query_one("#incident-detail").render())
            assert "agent-crash" in detail and "for models" in detail
            # the agent dies again and comes back on the same port: the screen picks up the new one
            agent.proc.send_signal(signal.SIGKILL)
            agent.proc.wait(10)
            again = launch_agent(state, "--simulate", "gb10", "--interval", "0.2", port=agent.port, tokens=(agent.read_token, agent.control_token))
            await until(pilot, lambda: screen.query_one("#incidents", DataTable).row_count == 2, what="the second incident after the reconnect")
    finally:
        for a in (agent, again):
            if a is not None and a.proc.poll() is None:
                a.stop()


def test_damaged_incident_files_do_not_stop_the_agent(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "run.json").write_text("{half a rec")
    (state / "incidents.json").write_text('{"incidents": [{"id": "x"}, 7]}')
    agent = launch_agent(state, "--simulate", "gb10", "--interval", "0.2")
    try:
        assert incidents(agent)["incidents"] == [] and hello(agent)["incidents"] == 0
        assert json.loads((state / "run.json").read_text())["state"] == "running"  # rewritten for this run
        assert "unreadable" in agent.log()
    finally:
        assert agent.stop() == 0
    assert json.loads((state / "run.json").read_text())["state"] == "stopped"
