"""Without aiodocker the agent still runs; the container view says what to install."""

from __future__ import annotations

from pathlib import Path

from containers_helpers import call


def test_agent_runs_without_aiodocker(start_agent, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "aiodocker"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("aiodocker hidden by the test")\n')
    agent = start_agent("--simulate", "gb10", env={"PYTHONPATH": str(shadow.parent)})
    snap = call(agent, "GET", "/api/v1/snapshot", agent.read_token).json()
    assert snap["containers_status"]["state"] == "unavailable"
    assert "aiodocker" in snap["containers_status"]["message"] and snap["containers_status"]["fix"] == "pip install aiodocker"
    assert snap["gpus"] and snap["host"]["cpu"]
    r = call(agent, "POST", "/api/v1/containers/x/start", agent.control_token)
    assert r.status_code == 503 and r.json()["error"] == "engine_unavailable"
    assert call(agent, "GET", "/api/v1/models", agent.read_token).status_code == 200  # the catalog needs no engine
    assert "Traceback" not in agent.log()
