"""Stop and start the machine's dockerd the way it was started (engine-restart tests; root only)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

PIDFILE = Path("/var/run/docker.pid")


def _dockerd_pid() -> int | None:
    try:
        pid = int(PIDFILE.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _systemd_managed() -> bool:
    return shutil.which("systemctl") is not None and subprocess.run(["systemctl", "is-active", "--quiet", "docker"]).returncode == 0


def _wait_engine(up: bool, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
        if ok == up:
            return
        time.sleep(0.3)
    raise AssertionError(f"dockerd did not {'start' if up else 'stop'} within {timeout}s")


class Dockerd:
    """Stops and restarts the running dockerd the way it was started."""

    def __init__(self) -> None:
        self.pid = _dockerd_pid()
        self.systemd = _systemd_managed()
        self.cmdline: list[str] = []
        if self.pid and not self.systemd:
            self.cmdline = [a for a in Path(f"/proc/{self.pid}/cmdline").read_bytes().decode().split("\0") if a]

    def stop(self) -> None:
        if self.systemd:
            subprocess.run(["systemctl", "stop", "docker.socket", "docker"], check=True)
        else:
            assert self.pid is not None, "dockerd was not running when this Dockerd was made"
            os.kill(self.pid, 15)
            deadline = time.monotonic() + 60
            while _dockerd_pid() == self.pid and time.monotonic() < deadline:
                time.sleep(0.2)
        _wait_engine(False)

    def start(self) -> None:
        if _dockerd_pid() is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            if self.systemd:
                subprocess.run(["systemctl", "start", "docker"], check=True)
            else:
                with open("/tmp/dockerd.log", "ab") as log:  # the child holds its own copy of the descriptor
                    subprocess.Popen(self.cmdline, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        _wait_engine(True)
