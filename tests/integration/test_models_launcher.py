"""The model launcher on a real Docker engine, with a test catalog of busybox "model servers"."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from agent.protocol import ModelState, PullProgress
from tests.helpers.agent import free_port
from tests.helpers.calls import call, container_in, model_state, next_frame, open_stream, wait_for

pytestmark = pytest.mark.docker

SECRET = "s3cr3t-VALUE-4242"

CATALOG = """
[[model]]
name = "sdtest-web"
description = "busybox httpd playing a model server"
image = "sparkdeck-test/busybox:latest"
command = ["httpd", "-f", "-p", "8080", "-h", "{{root}}"]
params = {{ root = "/www" }}
ports = {{ "8080/tcp" = {web_port} }}
env = {{ TOKEN = "${{SD_TEST_SECRET}}", PLAIN = "hello" }}
health = {{ port = "8080/tcp", path = "/health" }}
endpoint = "/v1"
startup_timeout_s = 60

[[model]]
name = "sdtest-crash"
image = "sparkdeck-test/busybox:latest"
command = ["sh", "-c", "echo boom-out; echo token=$TOKEN; echo boom-err >&2; exit 3"]
ports = {{ "8080/tcp" = {crash_port} }}
env = {{ TOKEN = "${{SD_TEST_SECRET}}" }}
health = {{ port = "8080/tcp", path = "/health" }}

[[model]]
name = "sdtest-absent"
image = "sparkdeck-test/absent:1"

[[model]]
name = "sdtest-slow"
image = "sparkdeck-test/busybox:latest"
command = ["httpd", "-f", "-p", "8080", "-h", "/www"]
ports = {{ "8080/tcp" = {slow_port} }}
health = {{ port = "8080/tcp", path = "/never-there" }}
startup_timeout_s = 2

[[model]]
name = "sdtest-badcmd"
image = "sparkdeck-test/busybox:latest"
command = ["/no/such/program"]

[[model]]
name = "sdtest-broken"
image = "sparkdeck-test/busybox:latest"
ports = {{ "8080/tcp" = 70000 }}

[[model]]
name = "sdtest-file-secret"
image = "sparkdeck-test/busybox:latest"
command = ["sleep", "300"]
env = {{ KEY = "${{SD_FILE_SECRET}}" }}

[[model]]
name = "sdtest-needs-secret"
image = "sparkdeck-test/busybox:latest"
command = ["sleep", "300"]
env = {{ KEY = "${{SD_NOT_SET_ANYWHERE}}" }}
"""


@pytest.fixture
def launcher_agent(docker_engine, start_agent, tmp_path: Path):
    ports = {"web_port": free_port(), "crash_port": free_port(), "slow_port": free_port()}
    models = tmp_path / "models.toml"
    models.write_text(CATALOG.format(**ports))
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "secrets.env").write_text(f"SD_FILE_SECRET={SECRET}-file\n")  # the default secrets file
    agent = start_agent("--simulate", "gb10", "--interval", "0.25", "--models", str(models), env={"SD_TEST_SECRET": SECRET}, state_dir=state)
    agent.ports = ports
    yield agent
    names = [f"sparkdeck-sdtest-{m}" for m in ("web", "crash", "absent", "slow", "badcmd", "file-secret")]
    docker_engine.cli("rm", "-f", *names, check=False)  # what the launcher created for this test


def _control(agent, path: str, **kw) -> httpx.Response:
    return call(agent, "POST", "/api/v1" + path, agent.control_token, **kw)


async def test_model_reaches_ready_and_stops(docker_engine, launcher_agent) -> None:
    agent = launcher_agent
    seen: list[str] = []
    async with open_stream(agent) as ws:
        await next_frame(ws, lambda f: f["type"] == "hello", 10, "hello")  # read: the stream is in the hub, the first broadcast reaches it
        r = _control(agent, "/models/sdtest-web/start")
        assert r.status_code == 202, r.text
        assert r.json()["state"] == "starting"
        ready = await next_frame(
            ws, lambda f: seen.append(json.dumps(f)) or (f.get("type") == "model_state" and f["state"] in ("ready", "failed")), 60, "ready"
        )
        assert ready["state"] == "ready", ready
        ModelState.model_validate(ready)
        states = [json.loads(s)["state"] for s in seen if '"model_state"' in s]
        assert states == ["starting", "ready"]
        frame = await next_frame(ws, lambda f: seen.append(json.dumps(f)) or container_in(f, "sparkdeck-sdtest-web") is not None, 5, "model container")
        assert container_in(frame, "sparkdeck-sdtest-web")["model"] == "sdtest-web"

        port = agent.ports["web_port"]
        assert httpx.get(f"http://127.0.0.1:{port}/health").text == "ok\n"
        state = model_state(agent, "sdtest-web")
        assert state["state"] == "ready" and state["running"] and state["url"] == f"http://127.0.0.1:{port}/health"
        assert state["endpoint"] == f"http://127.0.0.1:{port}/v1" and ready["endpoint"] == state["endpoint"]  # what clients talk to, not the probe
        # the secret was resolved on the agent and reached the container, and nowhere else
        assert f"TOKEN={SECRET}" in docker_engine.cli("inspect", "-f", "{{json .Config.Env}}", "sparkdeck-sdtest-web")
        listing = call(agent, "GET", "/api/v1/models", agent.read_token)
        web = next(m for m in listing.json()["models"] if m["name"] == "sdtest-web")
        assert web["env"] == {"TOKEN": "${SD_TEST_SECRET}", "PLAIN": "hello"} and web["secrets"] == {"SD_TEST_SECRET": True}

        again = _control(agent, "/models/sdtest-web/start")
        assert again.status_code == 409 and again.json()["error"] == "already_running"

        r = _control(agent, "/models/sdtest-web/stop", params={"timeout_s": 1})
        assert r.status_code == 200 and r.json()["state"] == "stopped", r.text
        assert docker_engine.cli("inspect", "-f", "{{.State.Status}}", "sparkdeck-sdtest-web") == "exited"
        stopping = await next_frame(ws, lambda f: seen.append(json.dumps(f)) or f.get("type") == "model_state", 5, "stopping frame")
        assert stopping["state"] == "stopping", stopping  # sent before the engine call, so clients show it at once
        ModelState.model_validate(stopping)
        stopped = await next_frame(ws, lambda f: seen.append(json.dumps(f)) or f.get("type") == "model_state", 5, "stopped frame")
        assert stopped["state"] == "stopped" and "endpoint" not in stopped
        assert model_state(agent, "sdtest-web")["endpoint"] is None  # a stopped model has no endpoint

        # a stopped instance is replaced by the next start
        assert _control(agent, "/models/sdtest-web/start", json={"params": {"root": "/www"}}).status_code == 202
        wait_for(lambda: model_state(agent, "sdtest-web")["state"] == "ready", 60, "ready again")
        docker_engine.cli("kill", "sparkdeck-sdtest-web")  # dies after it was ready
        gone = wait_for(lambda: (s := model_state(agent, "sdtest-web"))["state"] == "exited" and s, 10, "exited state")
        assert not gone["running"]
        assert _control(agent, "/models/sdtest-web/stop", params={"timeout_s": 1}).status_code == 200
        assert _control(agent, "/models/sdtest-web/stop", params={"timeout_s": 1}).json()["error"] == "not_running"

    audit = call(agent, "GET", "/api/v1/audit", agent.control_token).json()["entries"]
    assert [(e["action"], e["result"]) for e in audit] == [
        ("model_start", "ok"),
        ("model_start", "error: already_running"),
        ("model_stop", "ok"),
        ("model_start", "ok"),
        ("model_stop", "ok"),
        ("model_stop", "error: not_running"),
    ]
    everything = "\n".join(seen) + listing.text + agent.log() + (agent.state_dir / "audit.log").read_text()
    assert SECRET not in everything


async def test_failures_come_back_as_clear_states(docker_engine, launcher_agent) -> None:
    agent = launcher_agent
    async with open_stream(agent) as ws:
        await next_frame(ws, lambda f: f["type"] == "hello", 10, "hello")  # read: the stream is in the hub, the first broadcast reaches it
        # missing image, no registry reachable: pulling, then failed with the reason
        r = _control(agent, "/models/sdtest-absent/start")
        assert r.status_code == 202 and r.json()["state"] == "pulling", r.text
        frames = []
        await next_frame(ws, lambda f: frames.append(f) or (f.get("type") == "model_state" and f["state"] == "failed"), 120, "pull failure")
        states = [f for f in frames if f.get("type") == "model_state"]
        assert [f["state"] for f in states] == ["pulling", "failed"]
        assert "sparkdeck-test/absent:1 is not on this machine" in states[-1]["message"]
        for f in frames:
            if f.get("type") == "pull_progress":
                PullProgress.model_validate(f)

    # the container exits at once: exit code and its last lines
    assert _control(agent, "/models/sdtest-crash/start").status_code == 202
    crash = wait_for(lambda: (s := model_state(agent, "sdtest-crash", agent.control_token))["state"] == "failed" and s, 30, "crash reported")
    assert crash["exit_code"] == 3 and "exited with code 3" in crash["message"]
    assert "stdout: boom-out" in crash["log_tail"] and "stderr: boom-err" in crash["log_tail"]
    assert "stdout: token=***" in crash["log_tail"]
    # ${VAR} from <state_dir>/secrets.env when the environment has none
    assert _control(agent, "/models/sdtest-file-secret/start").status_code == 202
    assert f"KEY={SECRET}-file" in docker_engine.cli(
        "inspect", "-f", "{{json .Config.Env}}", "sparkdeck-sdtest-file-secret"
    )  # a program that prints the secret: redacted in what we send
    assert SECRET not in call(agent, "GET", "/api/v1/models", agent.read_token).text + agent.log()

    # never healthy: start-up time-out
    assert _control(agent, "/models/sdtest-slow/start").status_code == 202
    slow = wait_for(lambda: (s := model_state(agent, "sdtest-slow"))["state"] == "failed" and s, 30, "time-out reported")
    assert "not ready after 2 s" in slow["message"]

    # port in use: refused before anything is created
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _control(agent, "/models/sdtest-web/start", json={"port": port})
        assert r.status_code == 409 and r.json()["error"] == "port_in_use" and str(port) in r.json()["detail"]
    assert docker_engine.cli("ps", "-aq", "--filter", "name=^/sparkdeck-sdtest-web$") == ""

    r = _control(agent, "/models/sdtest-needs-secret/start")
    assert r.status_code == 400 and r.json()["error"] == "missing_secret" and "SD_NOT_SET_ANYWHERE" in r.json()["detail"]
    r = _control(agent, "/models/sdtest-web/start", json={"params": {"root": "--evil"}})
    assert r.status_code == 400 and r.json()["error"] == "bad_param"
    r = _control(agent, "/models/sdtest-web/start", json={"params": {"nope": "x"}})
    assert r.status_code == 400 and "unknown param" in r.json()["detail"]
    r = _control(agent, "/models/sdtest-web/start", json={"params": ["not", "a", "dict"]})
    assert r.status_code == 422
    r = _control(agent, "/models/no-such-model/start")
    assert r.status_code == 404 and r.json()["error"] == "unknown_model"
    r = _control(agent, "/models/sdtest-broken/start")
    assert r.status_code == 400 and r.json()["error"] == "bad_template" and "ports" in r.json()["detail"]
    # the engine refuses to start it: a clear error, and the created container is removed again
    r = _control(agent, "/models/sdtest-badcmd/start")
    assert r.status_code in (400, 502) and r.json()["error"] == "engine_error" and "/no/such/program" in r.json()["detail"], r.text
    assert docker_engine.cli("ps", "-aq", "--filter", "name=^/sparkdeck-sdtest-badcmd$") == ""
    assert docker_engine.cli("ps", "-aq", "--filter", "name=^/sparkdeck-sdtest-web$") == ""
    assert "Traceback" not in agent.log() and agent.proc.poll() is None


async def test_a_launch_on_another_port_names_that_port_in_its_frames(docker_engine, launcher_agent) -> None:
    """The model_state frames of a launch with `port` carry that port in their endpoint (they named the template's)."""
    agent = launcher_agent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert port != agent.ports["web_port"]
    async with open_stream(agent) as ws:
        await next_frame(ws, lambda f: f["type"] == "hello", 10, "hello")
        r = _control(agent, "/models/sdtest-web/start", json={"port": port})
        assert r.status_code == 202, r.text
        try:
            ready = await next_frame(ws, lambda f: f.get("type") == "model_state" and f["state"] in ("ready", "failed"), 60, "ready")
            assert ready["state"] == "ready" and ready["endpoint"] == f"http://127.0.0.1:{port}/v1", ready
            assert model_state(agent, "sdtest-web")["endpoint"] == ready["endpoint"]
        finally:
            _control(agent, "/models/sdtest-web/stop")


def test_running_model_survives_an_agent_restart(docker_engine, launcher_agent, start_agent) -> None:
    """A new agent finds the model's container running: it says `running` (with the endpoint), not `idle`, and refuses a second launch."""
    agent = launcher_agent
    assert _control(agent, "/models/sdtest-web/start").status_code == 202
    wait_for(lambda: model_state(agent, "sdtest-web")["state"] == "ready", 60, "ready")
    agent.stop()
    again = start_agent("--simulate", "gb10", "--interval", "0.25", "--models", str(agent.state_dir.parent / "models.toml"), env={"SD_TEST_SECRET": SECRET})
    state = wait_for(lambda: (s := model_state(again, "sdtest-web"))["running"] and s, 15, "container found")
    port = agent.ports["web_port"]
    assert state["state"] == "running" and state["endpoint"] == f"http://127.0.0.1:{port}/v1", state
    r = call(again, "POST", "/api/v1/models/sdtest-web/start", again.control_token)
    assert r.status_code == 409 and r.json()["error"] == "already_running"
    assert call(again, "POST", "/api/v1/models/sdtest-web/stop", again.control_token, params={"timeout_s": 1}).json()["state"] == "stopped"


def test_catalog_lists_builtins_user_models_and_errors(docker_engine, start_agent, tmp_path: Path) -> None:
    models = tmp_path / "models.toml"
    models.write_text('[[model]]\nname = "vllm"\nimage = "sparkdeck-test/busybox:latest"\n\n[[model]]\nname = "bad"\nimage = "busybox"\nnope = 1\n')
    agent = start_agent("--simulate", "gb10", "--models", str(models), env={"HF_TOKEN": "hf_never_shown_123"})
    body = call(agent, "GET", "/api/v1/models", agent.read_token)
    data = body.json()
    names = {m["name"]: m for m in data["models"]}
    assert names["vllm"]["image"] == "sparkdeck-test/busybox:latest"
    assert {"trtllm", "sglang", "nim-llama3.1-8b", "open-webui", "ollama"} <= set(names)
    assert names["sglang"]["secrets"] == {"HF_TOKEN": True} and "hf_never_shown_123" not in body.text
    assert names["ollama"]["state"]["state"] == "idle"
    assert len(data["errors"]) == 1 and "'bad'" in data["errors"][0]
