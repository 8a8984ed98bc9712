"""The SSH transport against a real sshd on a loopback port, with keys made for the test."""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tui.ssh import SshError, SshTarget, Tunnel, check_agent, fetch_token, parse_ssh_url

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@pytest.fixture
def sshd(tmp_path, monkeypatch):
    """A real sshd on 127.0.0.1, and an ssh wrapper whose config knows it as host 'spark'."""
    if not Path(SSHD).exists() or not shutil.which("ssh"):
        pytest.fail("openssh-server/openssh-client are not installed; .ci/run installs them")
    d = tmp_path / "ssh"
    d.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "other_id")], check=True)
    (d / "authorized_keys").write_text((d / "id.pub").read_text())
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        f"PidFile {d / 'sshd.pid'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("sshd did not start: " + proc.stderr.read().decode())
    host_pub = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (d / "ssh_config").write_text(
        f"Host spark\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {d / 'id'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {d / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
        f"Host spark-badkey\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {d / 'other_id'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {d / 'known_hosts'}\n"
        f"Host spark-unknown\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {d / 'id'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {d / 'empty_known_hosts'}\n  StrictHostKeyChecking yes\n"
    )
    wrapper = d / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {d / "ssh_config"} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("SPARKDECK_SSH", str(wrapper))  # stands in for the user's ~/.ssh/config
    yield port
    proc.terminate()
    proc.wait(10)


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
