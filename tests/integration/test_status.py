"""``sparkdeck status`` (JSON checked against its schema) and ``sparkdeck hosts`` (file 0600, XDG)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from tests.helpers.agent import ROOT, free_port
from tui.status import StatusReport


def sparkdeck(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "SPARKDECK_TOKEN"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def xdg(tmp_path, monkeypatch):
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv("SPARKDECK_TOKEN", raising=False)
    return {"XDG_CONFIG_HOME": str(home)}


def test_status_json_matches_the_schema(start_agent, xdg):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    out = sparkdeck("status", agent.url, "--json", "--token", agent.read_token, env=xdg)
    assert out.returncode == 0, out.stderr
    report = StatusReport.model_validate_json(out.stdout)  # extra="forbid": no undocumented field
    assert report.state == "ok" and report.reachable and report.protocol_version == 1
    assert report.host.hostname and report.simulated is True
    gpu = report.gpus[0]
    assert gpu.name == "NVIDIA GB10" and gpu.memory_unified is True
    assert "power_limit_w" in gpu.unsupported
    assert report.containers is not None
    # the published schema (sparkdeck status --schema) is the model's, and names every field
    schema = json.loads(sparkdeck("status", "--schema", env=xdg).stdout)
    assert schema == StatusReport.model_json_schema()
    assert set(json.loads(out.stdout)) == set(schema["properties"])


def test_status_text_and_token_from_environment(start_agent, xdg):
    agent = start_agent("--simulate", "h200x2", "--interval", "0.2")
    out = sparkdeck("status", agent.url, env={**xdg, "SPARKDECK_TOKEN": agent.read_token})
    assert out.returncode == 0, out.stderr
    assert "GPU 0 NVIDIA H200" in out.stdout and "GPU 1 NVIDIA H200" in out.stdout


def test_status_unreachable_exits_non_zero(xdg):
    url = f"http://127.0.0.1:{free_port()}"
    out = sparkdeck("status", url, "--json", "--token", "x", "--timeout", "2", env=xdg)
    assert out.returncode == 1
    report = StatusReport.model_validate_json(out.stdout)
    assert report.state == "unreachable" and not report.reachable and "cannot reach" in report.error
    text = sparkdeck("status", url, "--token", "x", "--timeout", "2", env=xdg)
    assert text.returncode == 1 and "unreachable" in text.stderr


def test_status_bad_token_is_auth_failed(start_agent, xdg):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    out = sparkdeck("status", agent.url, "--json", "--token", "wrong", env=xdg)
    assert out.returncode == 3
    assert StatusReport.model_validate_json(out.stdout).state == "auth_failed"


def test_ssh_target_failures_are_specific(xdg):
    """The SSH transport itself is tested against a real sshd in test_ssh_transport/test_remote_cli."""
    out = sparkdeck("status", "ssh://me@sparkdeck-no-such-host.invalid", env=xdg)
    assert out.returncode == 2 and "cannot resolve sparkdeck-no-such-host.invalid" in out.stderr
    out = sparkdeck("ssh://-oProxyCommand=touch%20x", env=xdg)
    assert out.returncode == 2 and "ssh would misread" in out.stderr
    out = sparkdeck("status", "ssh://me@spark", env={**xdg, "SPARKDECK_SSH": "/nonexistent/ssh"})
    assert out.returncode == 2 and "ssh not found" in out.stderr


def test_hosts_add_list_remove_and_status_by_name(start_agent, xdg, tmp_path):
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    token_file = tmp_path / "spark.token"
    token_file.write_text(agent.read_token + "\n")
    assert sparkdeck("hosts", "add", "spark", agent.url, "--token-file", str(token_file), env=xdg).returncode == 0
    assert sparkdeck("hosts", "add", "other", "http://10.0.0.2:8611", "--token", "secret-token", env=xdg).returncode == 0
    path = tmp_path / "xdg" / "sparkdeck" / "hosts.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = sparkdeck("hosts", "list", env=xdg)
    assert "spark" in listed.stdout and "other" in listed.stdout and "secret-token" not in listed.stdout
    rows = json.loads(sparkdeck("hosts", "list", "--json", env=xdg).stdout)
    assert [r["name"] for r in rows] == ["spark", "other"]
    out = sparkdeck("status", "spark", "--json", env=xdg)
    assert out.returncode == 0, out.stderr
    assert StatusReport.model_validate_json(out.stdout).target == "spark"
    assert sparkdeck("hosts", "remove", "other", env=xdg).returncode == 0
    assert sparkdeck("hosts", "remove", "other", env=xdg).returncode == 1
    assert "other" not in path.read_text()
    unknown = sparkdeck("status", "nope", env=xdg)
    assert unknown.returncode == 2 and "spark" in unknown.stderr


def test_hosts_add_rejects_bad_urls(xdg):
    out = sparkdeck("hosts", "add", "x", "spark.local", env=xdg)
    assert out.returncode == 2 and "expected http://" in out.stderr
