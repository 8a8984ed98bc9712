"""The client's remote transports end to end: `sparkdeck status` over SSH and over pinned TLS,
`sparkdeck forward`, `hosts unpin` and `hosts add --fetch-token` (real sshd, real agents)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psutil
import pytest

from agent import tls
from tests.helpers.agent import ROOT, launch_agent


def client(*args: str, env: dict, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}, input=input
    )


@pytest.fixture
def home(tmp_path):
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_status_over_ssh(sshd, start_agent, home):
    agent = start_agent("--simulate", "gb10")
    env = {**home, "SPARKDECK_SSH": os.environ["SPARKDECK_SSH"]}
    r = client("status", f"ssh://spark?agent_port={agent.port}", "--token", agent.read_token, "--json", env=env)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["state"] == "ok" and report["simulated"] is True
    assert "via SSH" in r.stderr


def test_status_over_ssh_with_no_agent_is_specific(sshd, home):
    r = client("status", "ssh://spark?agent_port=9", "--token", "x", env={**home, "SPARKDECK_SSH": os.environ["SPARKDECK_SSH"]})
    assert r.returncode == 2 and "no sparkdeck agent answers" in r.stderr and "sparkdeck-agent serve" in r.stderr


def test_status_over_pinned_tls(tmp_path, home):
    state = tmp_path / "state"
    _, _, fp = tls.init(state)
    agent = launch_agent(state, "--simulate", "gb10", "--tls")
    url = f"https://127.0.0.1:{agent.port}"
    try:
        bad = client("status", url, "--token", agent.read_token, "--fingerprint", "SHA256:" + "B" * 43, env=home)
        assert bad.returncode == 2 and "not the expected" in bad.stderr
        first = client("status", url, "--token", agent.read_token, "--json", env=home)
        assert first.returncode == 0, first.stderr
        assert f"pinned certificate {fp}" in first.stderr
        again = client("status", url, "--token", agent.read_token, "--json", env=home)
        assert again.returncode == 0 and "pinned certificate" not in again.stderr
        agent.stop()
        tls.init(state, force=True)  # the agent's certificate changes
        agent = launch_agent(state, "--simulate", "gb10", "--tls", port=agent.port, tokens=(agent.read_token, agent.control_token))
        changed = client("status", url, "--token", agent.read_token, "--json", env=home)
        assert changed.returncode != 0
        assert json.loads(changed.stdout)["state"] == "unreachable" and "CERTIFICATE_VERIFY_FAILED" in changed.stdout
        unpin = client("hosts", "unpin", f"127.0.0.1:{agent.port}", env=home)
        assert unpin.returncode == 0
        repinned = client("status", url, "--token", agent.read_token, "--json", env=home)
        assert repinned.returncode == 0 and "pinned certificate" in repinned.stderr
    finally:
        agent.stop()


def ssh_children(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if p.name() == "ssh"]


def end_and_check_no_ssh_left(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """End the client with ``sig``; its ssh forwards (own session: they get no signal) must be gone too."""
    children = ssh_children(proc.pid)
    assert children, "the client runs no ssh"
    proc.send_signal(sig)
    proc.wait(10)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"ssh left running after {signal.Signals(sig).name}: {[p.pid for p in alive]}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP (terminal closed)"])
def test_forward_a_port_over_ssh(sshd, tmp_path, home, sig):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "v1").write_text("model says hi\n")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "www"), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, **home, "SPARKDECK_SSH": os.environ["SPARKDECK_SSH"]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "forward", "ssh://spark", str(server.server_address[1]), "--token", "x"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        local = line.split()[0]
        assert local.startswith("http://127.0.0.1:"), line + proc.stderr.read() if proc.poll() is not None else line
        assert httpx.get(local + "/v1").text == "model says hi\n"
        end_and_check_no_ssh_left(proc, sig)
    finally:
        proc.kill()
        proc.wait(10)
        server.shutdown()


def test_forward_a_model_by_name_over_ssh(sshd, start_agent, tmp_path, home):
    catalog = tmp_path / "models.toml"
    catalog.write_text('[[model]]\nname = "web"\nimage = "x/y:1"\nports = { "8080/tcp" = 18123 }\n')
    agent = start_agent("--simulate", "gb10", "--models", str(catalog))
    env = {**os.environ, **home, "SPARKDECK_SSH": os.environ["SPARKDECK_SSH"]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "forward", f"ssh://spark?agent_port={agent.port}", "web", "--token", agent.read_token],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "-> " in line and "port 18123" in line, line + (proc.stderr.read() if proc.poll() is not None else "")
        assert len(ssh_children(proc.pid)) == 2  # the agent's tunnel and the model's forward
        end_and_check_no_ssh_left(proc)
    finally:
        proc.kill()
        proc.wait(10)


def test_hosts_add_fetches_a_token_over_ssh_with_consent(sshd, start_agent, home, tmp_path):
    agent = start_agent("--simulate", "gb10")
    remote = f"SPARKDECK_STATE_DIR={agent.state_dir} {Path(sys.executable).parent / 'sparkdeck-agent'}"
    env = {**home, "SPARKDECK_SSH": os.environ["SPARKDECK_SSH"]}
    url = f"ssh://spark?agent_port={agent.port}"
    declined = client("hosts", "add", "spark", url, "--fetch-token", "--remote-agent", remote, env=env, input="n\n")
    assert declined.returncode == 1 and "declined" in declined.stderr
    r = client("hosts", "add", "spark", url, "--fetch-token", "--remote-agent", remote, env=env, input="y\n")
    assert r.returncode == 0, r.stderr
    hosts = (Path(home["XDG_CONFIG_HOME"]) / "sparkdeck" / "hosts.toml").read_text()
    assert "sdk_" in hosts
    status = client("status", "spark", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "ok"
