"""The systemd unit (real systemd-analyze), install-service, and the notify/watchdog protocol."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.notify import Notifier
from tests.helpers.agent import ROOT, launch_agent

UNIT = ROOT / "systemd" / "sparkdeck-agent.service"
AGENT_BIN = Path(sys.executable).parent / "sparkdeck-agent"


def need_systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is not installed (apt-get install systemd); .ci/run installs it")
    return path


def rendered_unit(tmp_path: Path) -> Path:
    # verify checks that ExecStart exists; point it at this venv's real executable
    out = tmp_path / "sparkdeck-agent.service"
    out.write_text(UNIT.read_text().replace("/opt/sparkdeck/bin/sparkdeck-agent", str(AGENT_BIN)))
    return out


def test_unit_passes_systemd_analyze_verify(tmp_path):
    tool = need_systemd_analyze()
    r = subprocess.run([tool, "verify", str(rendered_unit(tmp_path))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_unit_security_exposure_is_at_most_3_5(tmp_path):
    tool = need_systemd_analyze()
    r = subprocess.run([tool, "security", "--offline=yes", str(rendered_unit(tmp_path))], capture_output=True, text=True)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    score = float(m.group(1))
    print(f"systemd-analyze security exposure: {score}")
    assert score <= 3.5


def test_unit_declares_what_the_service_needs():
    text = UNIT.read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=sparkdeck",
        "SupplementaryGroups=docker",
        "StateDirectory=sparkdeck",
        "ConfigurationDirectory=sparkdeck",
        "RuntimeDirectory=sparkdeck",
        "DevicePolicy=closed",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
        "OOMScoreAdjust=-900\n",  # the memory guard must not be the kernel's first OOM victim
    ):
        assert line in text, line
    # every hardening option left out is explained
    for left_out in ("PrivateDevices", "PrivateUsers", "PrivateNetwork", "ProtectProc"):
        assert re.search(rf"^# {left_out}=\S+\s+\S", text, re.M), left_out


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.path = path
        self.messages: list[str] = []

    def wait_for(self, text: str, timeout: float = 15) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append(msg)
            if text in msg.split("\n"):
                return time.monotonic()
        raise AssertionError(f"{text!r} never arrived; got {self.messages}")

    def assert_silent(self, text: str, settle: float, timeout: float) -> None:
        """After ``settle`` s (what was sent before is drained), ``text`` does not arrive within ``timeout`` s."""
        time.sleep(settle)
        while True:
            try:
                self.sock.recv(4096)
            except TimeoutError:
                break
        with pytest.raises(AssertionError):
            self.wait_for(text, timeout=timeout)


def test_notify_ready_watchdog_and_stopping(tmp_path):
    ns = NotifySocket(tmp_path / "notify.sock")
    agent = launch_agent(tmp_path / "state", "--simulate", "gb10", "--interval", "0.2", env={"NOTIFY_SOCKET": str(ns.path), "WATCHDOG_USEC": "1000000"})
    try:
        ns.wait_for("READY=1")
        assert any(m.startswith("READY=1\nSTATUS=listening on http://127.0.0.1:") for m in ns.messages)
        first = ns.wait_for("WATCHDOG=1")
        second = ns.wait_for("WATCHDOG=1")
        assert second - first < 2.0  # pinged at half of WATCHDOG_USEC, repeatedly
        agent.proc.send_signal(signal.SIGTERM)
        ns.wait_for("STOPPING=1")
        assert agent.proc.wait(15) == 0
    finally:
        if agent.proc.poll() is None:
            agent.proc.kill()


def test_no_watchdog_pings_when_the_sampler_hangs(tmp_path):
    """A blocked event loop (the failure the watchdog exists for) stops the pings."""
    ns = NotifySocket(tmp_path / "notify.sock")
    agent = launch_agent(tmp_path / "state", "--simulate", "gb10", "--interval", "0.2", env={"NOTIFY_SOCKET": str(ns.path), "WATCHDOG_USEC": "1000000"})
    try:
        ns.wait_for("WATCHDOG=1")
        os.kill(agent.proc.pid, signal.SIGSTOP)  # the whole agent hangs
        ns.assert_silent("WATCHDOG=1", settle=0.3, timeout=2.5)
        os.kill(agent.proc.pid, signal.SIGCONT)
        ns.wait_for("WATCHDOG=1")
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)
        agent.proc.kill()


def test_notifier_abstract_socket_and_disabled_outside_systemd():
    assert not Notifier({}).enabled and Notifier({}).send("READY=1") is False
    name = f"sparkdeck-test-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind("\0" + name)
    srv.settimeout(2)
    n = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000"})
    assert n.watchdog_interval_s == 2.0
    n.ready()
    assert srv.recv(100) == b"READY=1"
    n.watchdog()
    n.watchdog()  # within half the deadline: not sent again
    assert srv.recv(100) == b"WATCHDOG=1"
    srv.settimeout(0.2)
    with pytest.raises(socket.timeout):
        srv.recv(100)
    # WATCHDOG_PID for another process: not ours to ping
    assert Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval_s is None


def test_the_test_hook_blocks_the_live_event_loop_and_the_pings_stop(tmp_path):
    """SIGSTOP stops the whole process; this hook keeps it running with its loop stuck (the case the watchdog is for)."""
    ns = NotifySocket(tmp_path / "notify.sock")
    env = {"NOTIFY_SOCKET": str(ns.path), "WATCHDOG_USEC": "1000000", "SPARKDECK_TEST_HOOKS": "1"}
    agent = launch_agent(tmp_path / "state", "--simulate", "gb10", "--interval", "0.2", env=env)
    try:
        ns.wait_for("WATCHDOG=1")
        assert "test hooks are on" in agent.log()
        os.kill(agent.proc.pid, signal.SIGUSR2)
        ns.assert_silent("WATCHDOG=1", settle=0.5, timeout=2.5)
        state = Path(f"/proc/{agent.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert agent.proc.poll() is None and state in ("S", "R", "D")  # alive and not stopped: only the loop is stuck
    finally:
        agent.proc.kill()
        agent.proc.wait(10)


def test_test_hooks_are_off_by_default():
    import asyncio

    from agent import testhooks

    loop = asyncio.new_event_loop()
    try:
        assert testhooks.install(loop, {}) is False
    finally:
        loop.close()
