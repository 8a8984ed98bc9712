"""Without a Docker engine the agent still runs; the container view says why and how to fix it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.calls import call

ROOT = Path(__file__).resolve().parents[2]


def test_agent_runs_without_an_engine(start_agent, tmp_path: Path) -> None:
    missing = tmp_path / "no-docker.sock"
    agent = start_agent("--simulate", "gb10", env={"SPARKDECK_DOCKER_HOST": f"unix://{missing}"})
    snap = call(agent, "GET", "/api/v1/snapshot", agent.read_token).json()
    assert snap["containers_status"]["state"] == "unavailable"
    assert snap["containers_status"]["message"] == f"no Docker engine socket at {missing}"
    assert "set DOCKER_HOST" in snap["containers_status"]["fix"]
    assert snap["gpus"] and snap["host"]["cpu"]
    r = call(agent, "POST", "/api/v1/containers/x/start", agent.control_token)
    assert r.status_code == 503 and r.json()["error"] == "engine_unavailable"
    assert call(agent, "GET", "/api/v1/models", agent.read_token).status_code == 200  # the catalog needs no engine
    assert "Traceback" not in agent.log()


def test_the_engine_client_needs_no_aiohttp() -> None:
    # aiohttp alone added ~10 MB to the agent's RSS; the engine client speaks HTTP with h11
    code = "import sys, agent.api.app, agent.containers.service, agent.cli; print([m for m in ('aiohttp', 'aiodocker') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    assert out == "[]"
