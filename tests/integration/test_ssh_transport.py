"""The SSH transport against a real sshd on a loopback port, with keys made for the test."""

from __future__ import annotations

import http.server
import socket
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.helpers.agent import free_port
from tui.ssh import SshError, SshTarget, Tunnel, check_agent, fetch_token, parse_ssh_url


def test_parse_ssh_url():
    assert parse_ssh_url("ssh://me@spark:2222") == SshTarget(host="spark", user="me", port=2222)
    assert parse_ssh_url("ssh://spark?agent_port=9000").agent_port == 9000
    for bad in ("ssh://-oProxyCommand=evil", "ssh://spark?x=1", "http://spark", "ssh://a;b@spark"):
        with pytest.raises(SshError):
            parse_ssh_url(bad)


def test_client_reaches_the_agent_through_ssh(sshd, start_agent):
    agent = start_agent("--simulate", "gb10")
    target = parse_ssh_url(f"ssh://spark?agent_port={agent.port}")
    with Tunnel(target, target.agent_port) as tunnel:
        check_agent(tunnel)
        assert tunnel.local_port != agent.port
        r = httpx.get(tunnel.local_url + "/api/v1/snapshot", headers=agent.headers(agent.read_token))
        assert r.status_code == 200 and r.json()["simulated"] is True
    with pytest.raises(OSError):  # torn down on exit
        socket.create_connection(("127.0.0.1", tunnel.local_port), timeout=1).close()


def test_forwarded_model_port_answers_on_the_laptop_side(sshd, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "health").write_text("ok\n")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "www"), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Tunnel(SshTarget("spark"), server.server_address[1]) as tunnel:
            assert httpx.get(tunnel.local_url + "/health").text == "ok\n"
    finally:
        server.shutdown()


def test_remote_agent_not_running_is_specific(sshd):
    target = SshTarget("spark", agent_port=free_port())
    with Tunnel(target, target.agent_port) as tunnel, pytest.raises(SshError, match="sparkdeck-agent serve"):
        check_agent(tunnel, timeout=5)


def test_auth_failure_is_specific(sshd):
    with pytest.raises(SshError, match="authentication .* failed"):
        Tunnel(SshTarget("spark-badkey"), 8611).open()


def test_unknown_host_key_is_specific(sshd):
    with pytest.raises(SshError, match="host key is unknown"):
        Tunnel(SshTarget("spark-unknown"), 8611).open()


def test_ssh_missing_is_specific(monkeypatch):
    monkeypatch.setenv("SPARKDECK_SSH", "/nonexistent/ssh")
    with pytest.raises(SshError, match="ssh not found"):
        Tunnel(SshTarget("spark"), 8611).open()


def test_token_fetched_once_over_ssh_works_against_the_agent(sshd, start_agent, tmp_path):
    agent = start_agent("--simulate", "gb10")
    exe = Path(sys.executable).parent / "sparkdeck-agent"
    token = fetch_token(SshTarget("spark"), "laptop", agent_command=f"SPARKDECK_STATE_DIR={agent.state_dir} {exe}")
    assert token.startswith("sdk_")
    assert httpx.get(agent.url + "/api/v1/info", headers=agent.headers(token)).status_code == 200
    with pytest.raises(SshError, match="exists"):
        fetch_token(SshTarget("spark"), "laptop", agent_command=f"SPARKDECK_STATE_DIR={agent.state_dir} {exe}")
