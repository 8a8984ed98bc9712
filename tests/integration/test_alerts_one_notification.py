"""One event, one notification, on a real agent and a real Docker engine, with a json:// receiver.

A model whose container dies while launching raises ``model-failed`` (notified) and a quiet
``container-exited`` (info, ended_by "launch", recorded, not notified). A stop asked for through
``POST /models/{name}/stop`` or ``POST /containers/{id}/stop`` is a quiet ``container-exited`` with
ended_by "request". A watched container that ends on its own is still notified.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent.protocol import AlertList
from tests.helpers.agent import free_port
from tests.helpers.calls import call, model_state, wait_for
from tests.helpers.notify import Receiver, alerts_toml

pytestmark = pytest.mark.docker

CATALOG = """  # the crash model has a health URL: it is still launching when its container dies
[[model]]
name = "sdone-crash"
image = "sparkdeck-test/busybox:latest"
command = ["sh", "-c", "echo boom; sleep 1; exit 3"]
ports = {{ "8080/tcp" = {port} }}
health = {{ port = "8080/tcp", path = "/health" }}

[[model]]
name = "sdone-sleep"
image = "sparkdeck-test/busybox:latest"
command = ["sleep", "300"]
"""


def test_one_failure_one_notification_and_stops_on_request_are_quiet(start_agent, docker_engine, tmp_path: Path):
    receiver = Receiver()
    models = tmp_path / "models.toml"
    models.write_text(CATALOG.format(port=free_port()))
    cfg = tmp_path / "agent.toml"
    rules = [
        {"name": "container-exited", "event": "container_exit", "severity": "warning"},
        {"name": "model-failed", "event": "model_failed", "severity": "warning"},
    ]
    cfg.write_text(alerts_toml(rules, f"json://127.0.0.1:{receiver.port}/hook", "info"))  # info: the quiet ones would pass the floor
    agent = start_agent("--simulate", "gb10", "--interval", "0.2", "--models", str(models), "--config", str(cfg))

    def exits(subject: str) -> list[dict]:
        listing = AlertList.model_validate(call(agent, "GET", "/api/v1/alerts", agent.read_token).json())
        return [a.model_dump() for a in listing.recent if a.rule == "container-exited" and a.subject == subject]

    def mine() -> list[dict]:
        # the engine is shared: another run's watched containers may end meanwhile; ours all say "sdone"
        return [b for _, b in receiver.got if "sdone" in b.get("title", "") + b.get("message", "")]

    def titles() -> list[str]:
        return [b.get("title", "") for b in mine()]

    try:
        # 1. a model that dies while launching: model-failed notified once, the exit recorded quietly
        assert call(agent, "POST", "/api/v1/models/sdone-crash/start", agent.control_token).status_code == 202
        wait_for(lambda: model_state(agent, "sdone-crash", agent.control_token)["state"] == "failed", 30, "the launch failure")
        ended = wait_for(lambda: exits("sparkdeck-sdone-crash"), 30, "its container-exited record")[0]
        assert ended["severity"] == "info" and ended["details"]["ended_by"] == "launch" and ended["details"]["exit_code"] == 3
        wait_for(lambda: [t for t in titles() if "model-failed" in t], 30, "the model-failed notification")  # the first delivery imports Apprise
        time.sleep(2)  # delivery is asynchronous: give a second notification the chance to show up
        assert not [t for t in titles() if "container-exited" in t], titles()
        assert len(mine()) == 1

        # 2. a model stopped through the API: recorded as stopped on request, not notified
        assert call(agent, "POST", "/api/v1/models/sdone-sleep/start", agent.control_token).status_code == 202
        wait_for(lambda: model_state(agent, "sdone-sleep")["state"] == "ready", 30, "the model running")
        time.sleep(1)  # the alert engine has seen it running (a frame or two)
        assert call(agent, "POST", "/api/v1/models/sdone-sleep/stop?timeout_s=1", agent.control_token).status_code == 200
        stopped = wait_for(lambda: exits("sparkdeck-sdone-sleep"), 30, "its stop recorded")[0]
        assert stopped["severity"] == "info" and stopped["details"]["ended_by"] == "request"
        assert "stopped on request" in stopped["message"]

        # 3. a watched container stopped through the container route: the same
        name = f"sdone-watch-{docker_engine.session}"
        docker_engine.run("--label", "sparkdeck.watch=1", docker_engine.image, "sleep", "300", name=name)
        wait_for(lambda: any(c["name"] == name for c in call(agent, "GET", "/api/v1/snapshot", agent.read_token).json()["containers"]), 30, "it in frames")
        time.sleep(1)
        assert call(agent, "POST", f"/api/v1/containers/{name}/stop?timeout_s=1", agent.control_token).status_code == 200
        assert wait_for(lambda: exits(name), 30, "its stop recorded")[0]["details"]["ended_by"] == "request"

        # 4. control: a watched container that ends on its own is notified as before
        own = f"sdone-own-{docker_engine.session}"
        docker_engine.run("--label", "sparkdeck.watch=1", docker_engine.image, "sh", "-c", "sleep 2; exit 5", name=own)
        notified = wait_for(lambda: [b for b in mine() if "container-exited" in b.get("title", "")], 40, "the own exit notified")
        assert own in notified[0]["message"] and exits(own)[0]["details"]["ended_by"] == "itself" and exits(own)[0]["severity"] == "warning"
        time.sleep(1)
        assert len(mine()) == 2, titles()  # model-failed and the own exit; neither stop
    finally:
        receiver.close()
        docker_engine.cli("rm", "-f", "sparkdeck-sdone-crash", "sparkdeck-sdone-sleep", check=False)
