"""GPU processes (issue 14, item 1): the list and signals, against a real agent and real processes.

The fake NVML reports the pids it is told about (SPARKDECK_SIMULATE_PROCESSES, read when the agent
starts), so each test starts its real processes first: a `sleep`, a Python child that ignores
SIGTERM, a container's main process, a root-owned process signalled by an agent running as nobody.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal as signals
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest

from agent.auth import TokenStore
from agent.processes import procinfo
from agent.processes.service import ProcessService
from agent.protocol import ProcessList, SignalResult
from tests.helpers.agent import launch_agent
from tests.helpers.processes import DEAF_TO_TERM, NO_CONTAINERS, gpu_env


@pytest.fixture
def children():
    procs: list[subprocess.Popen] = []

    def spawn(*cmd: str, **kw) -> subprocess.Popen:
        # every child starts with SIGINT at its default: a shell that starts the suite in the background
        # (`cmd &`) leaves SIGINT ignored, exec keeps that, and a child would then survive the INT a test sends
        kw.setdefault("preexec_fn", lambda: signals.signal(signals.SIGINT, signals.SIG_DFL))
        p = subprocess.Popen(list(cmd), **kw)
        procs.append(p)
        return p

    yield spawn
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def alive(p: subprocess.Popen) -> bool:
    return p.poll() is None


def audit_entries(state_dir: Path) -> list[dict]:
    path = state_dir / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def signal(agent, pid: int, sig: str, token: str | None = None, **body) -> httpx.Response:
    return httpx.post(
        f"{agent.url}/api/v1/processes/{pid}/signal", json={"signal": sig, **body}, headers=agent.headers(token or agent.control_token), timeout=40
    )


def test_list_and_signals_on_real_processes(start_agent, children):
    sleeper = children("sleep", "300")
    deaf = children(sys.executable, "-c", DEAF_TO_TERM)
    interrupted = children("sleep", "300")
    outsider = children("sleep", "300")  # a real process NVML does not list
    agent = start_agent("--simulate", "gb10", "--interval", "0.2", env={**gpu_env(sleeper.pid, deaf.pid, interrupted.pid), **NO_CONTAINERS})
    time.sleep(0.3)  # let the child python ignore SIGTERM before anything is sent

    r = httpx.get(f"{agent.url}/api/v1/processes", headers=agent.headers(agent.read_token), timeout=10)
    assert r.status_code == 200
    ProcessList.model_validate(r.json())  # the wire model, extra fields forbidden
    rows = {row["pid"]: row for row in r.json()["processes"]}
    assert set(rows) == {sleeper.pid, deaf.pid, interrupted.pid}
    row = rows[sleeper.pid]
    assert row["user"] == "root" and row["uid"] == 0 and row["command"] == "sleep 300" and row["name"] == "sleep"
    assert row["container"] is None and row["container_main"] is False and row["gpu"] == 0
    assert row["used_gpu_memory_bytes"] == 3 * 1024**3 and row["rss_bytes"] > 0
    assert abs(row["start_time"] - psutil.Process(sleeper.pid).create_time()) < 0.05
    assert row["cpu_percent"] is not None and row["cpu_percent"] >= 0
    assert DEAF_TO_TERM in rows[deaf.pid]["command"]

    # a read token may look, not signal
    r = signal(agent, sleeper.pid, "KILL", agent.read_token)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    # a pid that is not a GPU process: 404, and nothing reaches it
    r = signal(agent, outsider.pid, "KILL")
    assert r.status_code == 404 and r.json()["error"] == "not_a_gpu_process"
    # a start time that is not the process's own: refused, nothing sent
    r = signal(agent, sleeper.pid, "KILL", start_time=row["start_time"] - 10)
    assert r.status_code == 409 and r.json()["error"] == "pid_changed"
    time.sleep(0.3)
    assert alive(sleeper) and alive(outsider)

    # TERM ignored: said so; KILL ends it
    r = signal(agent, deaf.pid, "TERM", wait_s=0.5)
    assert r.status_code == 200, r.text
    body = SignalResult.model_validate(r.json()).model_dump()
    assert body["sent"] is True and body["result"] == "still_running" and "send KILL" in body["detail"]
    assert alive(deaf)
    r = signal(agent, deaf.pid, "KILL")
    assert r.json()["result"] == "exited" and r.json()["sent"] is True
    assert deaf.wait(5) == -9

    r = signal(agent, sleeper.pid, "TERM", start_time=row["start_time"])
    assert r.json()["result"] == "exited" and r.json()["waited_s"] < 3
    assert sleeper.wait(5) == -15
    r = signal(agent, sleeper.pid, "TERM")  # reaped, still listed by the (fake) NVML: already gone
    assert r.status_code == 200 and r.json()["result"] == "gone" and r.json()["sent"] is False
    r = signal(agent, interrupted.pid, "INT")
    assert r.json()["result"] == "exited" and interrupted.wait(5) == -2

    r = httpx.get(f"{agent.url}/api/v1/processes", headers=agent.headers(agent.read_token), timeout=10)
    assert r.json()["processes"] == []  # exited processes are left out even while NVML still lists them
    assert alive(outsider)

    entries = [e for e in audit_entries(agent.state_dir) if e["action"].startswith("signal")]
    assert [(e["action"], e["target"], e["result"]) for e in entries] == [
        ("signal KILL", f"pid {outsider.pid}", "error: not_a_gpu_process"),
        ("signal KILL", f"pid {sleeper.pid}", "error: pid_changed"),
        ("signal TERM", f"pid {deaf.pid}", "still_running"),
        ("signal KILL", f"pid {deaf.pid}", "exited"),
        ("signal TERM", f"pid {sleeper.pid}", "exited"),
        ("signal TERM", f"pid {sleeper.pid}", "gone"),
        ("signal INT", f"pid {interrupted.pid}", "exited"),
    ]
    assert all(e["token"] == "controller" for e in entries)
    assert "Traceback" not in agent.log()


def test_bad_requests_answer_json(start_agent, children):
    sleeper = children("sleep", "300")
    agent = start_agent("--simulate", "gb10", env={**gpu_env(sleeper.pid), **NO_CONTAINERS})
    for body in ({"signal": "HUP"}, {"signal": "TERM", "wait_s": 99}, {"signal": "TERM", "extra": 1}, {}):
        r = httpx.post(f"{agent.url}/api/v1/processes/{sleeper.pid}/signal", json=body, headers=agent.headers(agent.control_token))
        assert r.status_code == 422 and r.json()["error"] == "invalid", body
    for pid in ("0", "-1", "abc", str(2**40)):
        r = httpx.post(f"{agent.url}/api/v1/processes/{pid}/signal", json={"signal": "KILL"}, headers=agent.headers(agent.control_token))
        assert r.status_code == 422 and r.json()["error"] == "invalid", pid
    assert httpx.get(f"{agent.url}/api/v1/processes").status_code == 401
    assert alive(sleeper)


def test_control_disabled_refuses_signals(start_agent, children):
    sleeper = children("sleep", "300")
    agent = start_agent("--simulate", "gb10", env={**gpu_env(sleeper.pid), **NO_CONTAINERS, "SPARKDECK_CONTROL_ENABLED": "false"})
    r = signal(agent, sleeper.pid, "KILL")
    assert r.status_code == 403 and r.json()["error"] == "control_disabled"
    assert alive(sleeper)


@pytest.mark.docker
def test_container_main_process(start_agent, docker_engine):
    name = f"sd-proc-{uuid.uuid4().hex[:8]}"
    cid = docker_engine.run(docker_engine.image, "sleep", "300", name=name)
    try:
        pid = docker_engine.pid(name)
        agent = start_agent("--simulate", "gb10", "--interval", "0.2", env=gpu_env(pid))
        deadline = time.time() + 10
        while True:  # the tracker learns the container's name from the engine
            rows = httpx.get(f"{agent.url}/api/v1/processes", headers=agent.headers(agent.read_token), timeout=10).json()["processes"]
            if rows and rows[0]["container"] and rows[0]["container"]["name"] == name or time.time() > deadline:
                break
            time.sleep(0.2)
        assert rows[0]["container"] == {"id": cid[:12], "full_id": cid, "name": name}
        assert rows[0]["container_main"] is True and rows[0]["command"] == "sleep 300"

        # busybox sleep as pid 1 has no SIGTERM handler: the kernel drops the signal
        r = signal(agent, pid, "TERM", wait_s=1)
        body = r.json()
        assert body["result"] == "still_running", body
        assert f"main process of container {name}" in body["detail"] and "ignores SIGTERM" in body["detail"]
        assert docker_engine.cli("inspect", "-f", "{{.State.Running}}", name) == "true"
        r = signal(agent, pid, "KILL")
        assert r.json()["result"] == "exited"
        entry = [e for e in audit_entries(agent.state_dir) if e["action"] == "signal KILL"][-1]
        assert f"container {name}" in entry["detail"]
    finally:
        docker_engine.cli("rm", "-f", name, check=False)


def _nobody_can_run_agent() -> bool:
    probe = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", "import agent"], capture_output=True, cwd="/"
    )
    return probe.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to run the agent as nobody")
def test_not_permitted_for_another_users_process(children):
    if not _nobody_can_run_agent():
        pytest.skip("nobody cannot run this venv's Python")
    root_owned = children("sleep", "300")
    state = Path(tempfile.mkdtemp(prefix="sparkdeck-test-", dir="/var/tmp"))
    try:
        store = TokenStore(state / "tokens.json")
        tokens = (store.add("reader", "read"), store.add("controller", "control"))
        for p in [state, *state.rglob("*")]:
            os.chown(p, 65534, 65534)
        agent = launch_agent(
            state,
            "--simulate",
            "gb10",
            env={**gpu_env(root_owned.pid), **NO_CONTAINERS, "HOME": str(state)},
            tokens=tokens,
            wrap=("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"),
        )
        try:
            assert psutil.Process(agent.proc.pid).uids().real == 65534
            rows = httpx.get(f"{agent.url}/api/v1/processes", headers=agent.headers(agent.read_token)).json()["processes"]
            assert [(r["pid"], r["user"]) for r in rows] == [(root_owned.pid, "root")]
            r = signal(agent, root_owned.pid, "KILL")
            assert r.status_code == 403 and r.json()["error"] == "not_permitted"
            detail = r.json()["detail"]
            assert "runs as nobody" in detail and "owned by root" in detail and f"sudo kill {root_owned.pid}" in detail
            time.sleep(0.2)
            assert alive(root_owned)
            assert [e["result"] for e in audit_entries(state) if e["action"] == "signal KILL"] == ["error: not_permitted"]
        finally:
            agent.stop()
    finally:
        shutil.rmtree(state, ignore_errors=True)


# -- at the boundary: pid reuse, /proc parsing ------------------------------------------


async def test_reused_pid_is_never_signalled(children):
    p = children("sleep", "300")
    svc = ProcessService()
    svc.note_frame({"gpus": [{"index": 0, "processes": [{"pid": p.pid, "used_memory_bytes": 1}]}], "gpu_status": {"state": "ok"}})
    assert svc._seen[p.pid] == procinfo.read_stat(p.pid).start_ticks
    svc._seen[p.pid] -= 1  # as if NVML had listed an earlier process under this number
    answer = await svc.send(p.pid, "KILL", wait_s=0.5)
    assert answer["result"] == "gone" and answer["sent"] is False
    assert (await svc.listing())["processes"] == []
    await asyncio.sleep(0.1)
    assert alive(p)


def test_stat_and_cmdline_parsing(tmp_path):
    d = tmp_path / "4242"
    d.mkdir()
    # a command name with spaces and ')' must not shift the fields
    fields = ["S"] + ["0"] * 10 + ["150", "50"] + ["0"] * 6 + ["12345", "0", "10"]
    (d / "stat").write_text(f"4242 (evil ) name) {' '.join(fields)}\n")
    (d / "cmdline").write_bytes(b"python\0-c\0import os\n\x1b[2J" + b"x" * 1000 + b"\0")
    (d / "status").write_text("Name:\tx\nUid:\t1000\t1000\t1000\t1000\nNSpid:\t4242\t1\n")
    info = procinfo.read_stat(4242, str(tmp_path))
    assert info is not None and info.start_ticks == 12345 and info.cpu_ticks == 200 and info.rss_bytes == 10 * procinfo.PAGE
    text = procinfo.cmdline(4242, str(tmp_path))
    assert text is not None
    assert text.startswith("python -c import os  [2Jxxx") and len(text) == procinfo.CMDLINE_MAX  # control characters blanked
    uid, _user, ns_init = procinfo.owner(4242, str(tmp_path))
    assert uid == 1000 and ns_init is True
    (d / "stat").write_text(f"4242 (z) Z {' '.join(fields[1:])}\n")
    assert procinfo.read_stat(4242, str(tmp_path)) is None  # a zombie has exited
