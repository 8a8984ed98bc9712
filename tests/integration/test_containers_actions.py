"""Container actions, logs and the audit log through the API, on a real Docker engine."""

from __future__ import annotations

import json
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent.protocol import CLOSE_LOG_END, ContainerDetail, LogEnd, LogLine
from tests.helpers.calls import call, wait_for

pytestmark = pytest.mark.docker

ACTIONS = [
    ("POST", "/containers/{c}/start"),
    ("POST", "/containers/{c}/stop"),
    ("POST", "/containers/{c}/restart"),
    ("POST", "/containers/{c}/remove"),
    ("GET", "/containers/{c}/logs"),
    ("GET", "/audit"),
    ("POST", "/models/vllm/start"),
    ("POST", "/models/vllm/stop"),
]


def _name(prefix: str) -> str:
    return f"sdt-{prefix}-{uuid.uuid4().hex[:8]}"


def _state(docker_engine, name: str) -> str:
    return docker_engine.cli("inspect", "-f", "{{.State.Status}}", name)


def test_stop_start_restart_remove(docker_engine, start_agent) -> None:
    name = _name("act")
    cid = docker_engine.run(docker_engine.image, "sleep", "300", name=name)
    agent = start_agent("--simulate", "gb10", "--interval", "0.5")
    tok = agent.control_token

    r = call(agent, "POST", f"/api/v1/containers/{name}/stop", tok, params={"timeout_s": 0})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "exited" and r.json()["full_id"] == cid and r.json()["id"] == cid[:12]
    ContainerDetail.model_validate(r.json())
    assert _state(docker_engine, name) == "exited"

    r = call(agent, "POST", f"/api/v1/containers/{cid[:12]}/start", tok)  # a short id works too
    assert r.status_code == 200 and r.json()["state"] == "running"
    pid_before = docker_engine.pid(name)

    r = call(agent, "POST", f"/api/v1/containers/{name}/restart", tok, params={"timeout_s": 0})
    assert r.status_code == 200 and r.json()["state"] == "running"
    assert docker_engine.pid(name) != pid_before

    def figures_after_restart() -> bool:
        rows = {c["name"]: c for c in call(agent, "GET", "/api/v1/containers", agent.read_token).json()["containers"]}
        return rows[name]["memory_bytes"] is not None and rows[name]["cpu_percent"] is not None

    wait_for(figures_after_restart, 10, "stats read from the restarted container's new pid")

    r = call(agent, "POST", f"/api/v1/containers/{name}/remove", tok)
    assert r.status_code == 409 and r.json()["error"] == "refused" and "force=true" in r.json()["detail"]
    assert _state(docker_engine, name) == "running"

    r = call(agent, "POST", f"/api/v1/containers/{name}/remove", tok, params={"force": "true"})
    assert r.status_code == 200 and r.json() == {"id": cid[:12], "full_id": cid, "name": name, "state": "removed"}
    assert docker_engine.cli("ps", "-aq", "--filter", f"name=^/{name}$") == ""
    listed = call(agent, "GET", "/api/v1/containers", agent.read_token).json()["containers"]
    assert name not in {c["name"] for c in listed}

    entries = call(agent, "GET", "/api/v1/audit", tok).json()["entries"]
    assert [(e["action"], e["target"], e["result"]) for e in entries] == [
        ("stop", name, "ok"),
        ("start", cid[:12], "ok"),
        ("restart", name, "ok"),
        ("remove", name, "error: refused"),
        ("remove", name, "ok"),
    ]
    assert all(e["token"] == "controller" and e["client"].startswith("127.0.0.1:") and e["time"] > 0 for e in entries)
    lines = (agent.state_dir / "audit.log").read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[-1])["detail"] == "force"
    assert "Traceback" not in agent.log()


def test_engine_errors_and_bad_references_are_clear_json(docker_engine, start_agent) -> None:
    agent = start_agent("--simulate", "gb10")
    tok = agent.control_token
    r = call(agent, "POST", "/api/v1/containers/sdt-does-not-exist/start", tok)
    assert r.status_code == 404 and r.json()["error"] == "not_found" and "sdt-does-not-exist" in r.json()["detail"]
    for bad in ["..", "-rf", "a b", "x;rm", "a%00b", "$(id)", "x" * 200]:
        r = call(agent, "POST", f"/api/v1/containers/{bad}/stop", tok)
        assert r.status_code in (400, 404), (bad, r.status_code)
        assert set(r.json()) == {"error", "detail"}
    r = call(agent, "POST", "/api/v1/containers/.hidden/stop", tok)
    assert r.status_code == 400 and r.json()["error"] == "bad_container"
    r = call(agent, "POST", "/api/v1/containers/x/stop", tok, params={"timeout_s": "-1"})
    assert r.status_code == 422
    assert "Traceback" not in agent.log() and agent.proc.poll() is None


def test_read_token_gets_403_on_every_action(docker_engine, start_agent) -> None:
    name = _name("ro")
    docker_engine.run(docker_engine.image, "sleep", "300", name=name)
    agent = start_agent("--simulate", "gb10")
    for method, path in ACTIONS:
        r = call(agent, method, "/api/v1" + path.format(c=name), agent.read_token)
        assert r.status_code == 403, (path, r.status_code)
        assert r.json()["error"] == "forbidden"
        assert call(agent, method, "/api/v1" + path.format(c=name), None).status_code == 401
    assert _state(docker_engine, name) == "running"
    assert call(agent, "GET", "/api/v1/containers", agent.read_token).status_code == 200  # reading the list is fine


async def test_control_can_be_switched_off(docker_engine, start_agent) -> None:
    name = _name("off")
    docker_engine.run(docker_engine.image, "sleep", "300", name=name)
    agent = start_agent("--simulate", "gb10", env={"SPARKDECK_CONTROL_ENABLED": "false"})
    for method, path in ACTIONS[:5] + ACTIONS[6:]:
        r = call(agent, method, "/api/v1" + path.format(c=name), agent.control_token)
        assert r.status_code == 403 and r.json()["error"] == "control_disabled", path
        assert "control_enabled" in r.json()["detail"]
    with pytest.raises(InvalidStatus) as exc:
        async with connect(agent.url.replace("http", "ws") + f"/api/v1/containers/{name}/logs/stream", additional_headers=agent.headers(agent.control_token)):
            pass
    assert exc.value.response.status_code == 403 and json.loads(exc.value.response.body)["error"] == "control_disabled"
    assert _state(docker_engine, name) == "running"


async def test_logs_tail_and_follow_until_stop(docker_engine, start_agent) -> None:
    name = _name("logs")
    script = "echo out-1; sleep 0.2; echo err-1 >&2; sleep 0.2; echo out-2; trap 'echo bye; exit 0' TERM; while :; do sleep 0.2; done"
    docker_engine.run(docker_engine.image, "sh", "-c", script, name=name)
    agent = start_agent("--simulate", "gb10")
    tok = agent.control_token

    def tail() -> list:
        got = call(agent, "GET", f"/api/v1/containers/{name}/logs", tok, params={"tail": 10}).json()["lines"]
        return got if len(got) >= 3 else []

    lines = wait_for(tail, 10, "three log lines")
    # stdout and stderr are separate pipes: the script spaces its lines so their order is defined
    assert [(x["stream"], x["text"]) for x in lines] == [("stdout", "out-1"), ("stderr", "err-1"), ("stdout", "out-2")]
    assert all(x["ts"] and x["ts"][:2] == "20" for x in lines)
    one = call(agent, "GET", f"/api/v1/containers/{name}/logs", tok, params={"tail": 1}).json()["lines"]
    assert [x["text"] for x in one] == ["out-2"]
    assert call(agent, "GET", f"/api/v1/containers/{name}/logs", tok, params={"tail": -1}).status_code == 422

    ws_url = agent.url.replace("http", "ws") + f"/api/v1/containers/{name}/logs/stream?tail=2"
    async with connect(ws_url, additional_headers=agent.headers(tok)) as ws:
        first = [json.loads(await ws.recv()) for _ in range(2)]
        assert [(f["stream"], f["text"]) for f in first] == [("stderr", "err-1"), ("stdout", "out-2")]
        for f in first:
            LogLine.model_validate(f)
        docker_engine.cli("stop", "-t", "5", name)  # SIGTERM: the trap prints "bye", then the container stops
        rest = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                rest.append(json.loads(await ws.recv()))
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_LOG_END
        assert ("stdout", "bye") in [(f.get("stream"), f.get("text")) for f in rest]
        end = rest[-1]
        LogEnd.model_validate(end)
        assert end["type"] == "log_end" and end["exit_code"] == 0

    with pytest.raises(InvalidStatus) as exc:
        async with connect(agent.url.replace("http", "ws") + "/api/v1/containers/sdt-nope/logs/stream", additional_headers=agent.headers(tok)):
            pass
    assert exc.value.response.status_code == 404 and json.loads(exc.value.response.body)["error"] == "not_found"
    with pytest.raises(InvalidStatus) as exc:
        async with connect(ws_url, additional_headers=agent.headers(agent.read_token)):
            pass
    assert exc.value.response.status_code == 403 and json.loads(exc.value.response.body)["error"] == "forbidden"
