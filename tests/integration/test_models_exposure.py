"""What a launched model exposes, on a real Docker engine: ports on loopback unless the config
allows another address, and a failed model's log lines for control tokens only (issue 12)."""

from __future__ import annotations

import json

import httpx
import pytest

from agent.protocol import ModelState
from tests.helpers.agent import free_port
from tests.helpers.calls import call, model_state, next_frame, open_stream, wait_for

pytestmark = pytest.mark.docker

CATALOG = """
[[model]]
name = "sdexp-web"
image = "sparkdeck-test/busybox:latest"
command = ["httpd", "-f", "-p", "8080", "-h", "/www"]
ports = {{ "8080/tcp" = {web_port} }}
health = {{ port = "8080/tcp", path = "/health" }}
startup_timeout_s = 60

[[model]]
name = "sdexp-lan"
image = "sparkdeck-test/busybox:latest"
command = ["sleep", "300"]
ports = {{ "8080/tcp" = {lan_port} }}
bind = "0.0.0.0"

[[model]]
name = "sdexp-crash"
image = "sparkdeck-test/busybox:latest"
command = ["sh", "-c", "x=secret; echo prompt=$x-plans; head -c 100000 /dev/zero | tr '\\\\0' a; echo; echo boom-err >&2; exit 3"]
ports = {{ "8080/tcp" = {crash_port} }}
health = {{ port = "8080/tcp", path = "/health" }}
"""
NAMES = ("sdexp-web", "sdexp-lan", "sdexp-crash")


@pytest.fixture
def exposure_agent(docker_engine, start_agent, tmp_path):
    def start(**env: str):
        ports = {"web_port": free_port(), "lan_port": free_port(), "crash_port": free_port()}
        models = tmp_path / "models.toml"
        models.write_text(CATALOG.format(**ports))
        agent = start_agent("--simulate", "gb10", "--interval", "0.25", "--models", str(models), env=env)
        agent.ports = ports
        return agent

    yield start
    docker_engine.cli("rm", "-f", *(f"sparkdeck-{n}" for n in NAMES), check=False)


def _start(agent, name: str, **body) -> httpx.Response:
    return call(agent, "POST", f"/api/v1/models/{name}/start", agent.control_token, json=body)


def _bindings(docker_engine, name: str) -> list[str]:
    got = json.loads(docker_engine.cli("inspect", "-f", "{{json .HostConfig.PortBindings}}", f"sparkdeck-{name}"))
    return [b["HostIp"] for binds in got.values() for b in binds]


async def test_models_publish_on_loopback_unless_allowed(docker_engine, exposure_agent) -> None:
    agent = exposure_agent()
    port = agent.ports["web_port"]
    assert model_state(agent, "sdexp-web")["listen"] == [f"127.0.0.1:{port}"]  # before it starts: the template's
    r = _start(agent, "sdexp-web")
    assert r.status_code == 202, r.text
    wait_for(lambda: model_state(agent, "sdexp-web")["state"] == "ready", 60, "ready on loopback")
    assert _bindings(docker_engine, "sdexp-web") == ["127.0.0.1"]
    ports = json.loads(docker_engine.cli("inspect", "-f", "{{json .NetworkSettings.Ports}}", "sparkdeck-sdexp-web"))
    assert {p["HostIp"] for p in ports["8080/tcp"]} == {"127.0.0.1"}
    state = wait_for(lambda: (s := model_state(agent, "sdexp-web"))["listen"] == [f"127.0.0.1:{port}"] and s, 10, "listen from the engine")
    assert state["url"] == f"http://127.0.0.1:{port}/health"

    # another address: refused (4xx) before anything is created, from the request or the template
    r = _start(agent, "sdexp-lan", bind="0.0.0.0")
    assert r.status_code == 400 and r.json()["error"] == "bind_not_allowed" and "models_bind_allowed" in r.json()["detail"]
    r = _start(agent, "sdexp-lan")
    assert r.status_code == 400 and r.json()["error"] == "bind_not_allowed"
    r = _start(agent, "sdexp-lan", bind="not-an-address")
    assert r.status_code == 400 and r.json()["error"] == "bad_param"
    assert docker_engine.cli("ps", "-aq", "--filter", "name=^/sparkdeck-sdexp-lan$") == ""
    entries = call(agent, "GET", "/api/v1/audit", agent.control_token).json()["entries"]
    assert [e["result"] for e in entries if e["target"] == "sdexp-lan"] == ["error: bind_not_allowed"] * 2 + ["error: bad_param"]


async def test_bind_allowed_by_the_config(docker_engine, exposure_agent) -> None:
    agent = exposure_agent(SPARKDECK_MODELS_BIND_ALLOWED='["127.0.0.1", "0.0.0.0"]')
    r = _start(agent, "sdexp-lan")
    assert r.status_code == 202, r.text
    assert _bindings(docker_engine, "sdexp-lan") == ["0.0.0.0"]
    assert model_state(agent, "sdexp-lan")["listen"][0] == f"0.0.0.0:{agent.ports['lan_port']}"


async def test_failed_launch_log_tail_reaches_control_streams_only(docker_engine, exposure_agent) -> None:
    agent = exposure_agent()
    failed = lambda f: f.get("type") == "model_state" and f["name"] == "sdexp-crash" and f["state"] == "failed"  # noqa: E731
    async with open_stream(agent, agent.read_token) as reader, open_stream(agent, agent.control_token) as controller:
        assert _start(agent, "sdexp-crash").status_code == 202
        to_control = await next_frame(controller, failed, 60, "failed frame on the control stream")
        to_read = await next_frame(reader, failed, 10, "failed frame on the read stream")
    for frame in (to_control, to_read):
        ModelState.model_validate(frame)
        assert frame["exit_code"] == 3 and "exited with code 3" in frame["message"]
    assert "stdout: prompt=secret-plans" in to_control["log_tail"] and "stderr: boom-err" in to_control["log_tail"]
    assert max(len(line) for line in to_control["log_tail"]) < 600  # the 100 KB line is cut
    assert "log_tail" not in to_read and "secret-plans" not in json.dumps(to_read)

    as_read = model_state(agent, "sdexp-crash")
    as_control = model_state(agent, "sdexp-crash", agent.control_token)
    assert as_read["exit_code"] == 3 and "log_tail" not in as_read
    assert "stdout: prompt=secret-plans" in as_control["log_tail"]
    assert "secret-plans" not in call(agent, "GET", "/api/v1/models", agent.read_token).text
