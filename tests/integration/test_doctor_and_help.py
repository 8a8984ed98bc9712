"""`sparkdeck-agent doctor` probes the engine the agent will use; `sparkdeck --help` names every way in.

Both run as the real commands (subprocesses), as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.containers.engine import engine_url
from tests.helpers.agent import ROOT


def doctor(tmp_path: Path, config: str | None, env_host: str | None) -> dict[str, dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "SPARKDECK_CONFIG")}
    if env_host is not None:
        env["DOCKER_HOST"] = env_host
    cfg = tmp_path / "agent.toml"
    cfg.write_text(config or "")
    args = [sys.executable, "-m", "agent.cli", "doctor", "--json", "--simulate", "gb10", "--state-dir", str(tmp_path / "state"), "--config", str(cfg)]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return {c["name"]: c for c in json.loads(out.stdout)}


def test_doctor_probes_the_configured_docker_host_and_names_its_missing_socket(tmp_path):
    missing = tmp_path / "no-engine" / "docker.sock"
    checks = doctor(tmp_path, f'docker_host = "unix://{missing}"\n', env_host=None)
    assert checks["docker"]["ok"] is False
    assert checks["docker"]["detail"] == f"no Docker engine socket at {missing} (from docker_host)"
    assert "docker_host" in checks["docker"]["fix"]


def test_doctor_probes_DOCKER_HOST_when_no_docker_host_is_set(tmp_path):
    missing = tmp_path / "env-engine.sock"
    checks = doctor(tmp_path, None, env_host=f"unix://{missing}")
    assert checks["docker"]["ok"] is False and checks["docker"]["detail"] == f"no Docker engine socket at {missing} (from DOCKER_HOST)"


@pytest.mark.docker
def test_docker_host_wins_over_DOCKER_HOST_and_a_real_engine_answers(tmp_path, docker_engine):
    real = engine_url()  # where this test's own docker CLI reaches the engine
    checks = doctor(tmp_path, f'docker_host = "{real}"\n', env_host=f"unix://{tmp_path / 'wrong.sock'}")
    assert checks["docker"]["ok"] is True, checks["docker"]
    assert checks["docker"]["detail"] == f"engine answers at {real.removeprefix('unix://')} (from docker_host)"


def test_doctor_says_the_engine_is_off_when_containers_are_off(tmp_path):
    checks = doctor(tmp_path, 'containers = false\ndocker_host = "unix:///nowhere.sock"\n', env_host=None)
    assert checks["docker"] == {"name": "docker", "ok": True, "detail": "containers = false: the engine is not watched", "fix": None}


def sparkdeck(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "sparkdeck"  # the console script pip installed, as a user runs it
    return subprocess.run([str(script), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_help_names_ssh_targets_forward_and_setup_with_an_example_each():
    out = sparkdeck("--help")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "ssh://[USER@]HOST[:SSH_PORT][?agent_port=N]" in text
    examples = re.findall(r"^  (sparkdeck \S+(?: \S+)*?)\s{2,}\S", text, flags=re.M)
    assert any(e.startswith("sparkdeck ssh://") for e in examples), examples
    assert any(e.startswith("sparkdeck forward ") for e in examples), examples
    assert any(e.startswith("sparkdeck setup ") for e in examples), examples
    # every command the help names exists: its own --help answers
    for command in sorted({e.split()[1] for e in examples} & {"setup", "forward", "status", "hosts", "incidents", "watch"}):
        sub = sparkdeck(command, "--help")
        assert sub.returncode == 0 and f"sparkdeck {command}" in sub.stdout, (command, sub.stderr)
