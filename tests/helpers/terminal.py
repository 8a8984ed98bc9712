"""A real terminal for the real client: a detached tmux session running one command (the client bench and the
terminal tests drive ``sparkdeck`` through it; its output goes to the pane, never to a pipe)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil

from tests.helpers.agent import RunningAgent

COLS, ROWS = 160, 48
SETTLE_S = 5.0
NO_ENGINE = {"SPARKDECK_DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # an agent that polls no Docker engine


def thread_wakeups(pid: int, tid: int) -> int:
    """Voluntary context switches of thread ``tid`` of ``pid`` so far: one each time it slept and was woken."""
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        return int(next(x for x in f if x.startswith("voluntary_ctxt_switches")).split()[1])


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user+system) of a process and its live descendants."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


class Pane:
    """One detached tmux session of COLS x ROWS running one command."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        self.name = name
        self.socket = f"sdterm-{os.getpid()}-{name}"  # a server per pane: a killed last session takes its server down
        env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        self._tmux("new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS), *env_args, subprocess.list2cmdline(command))
        self.pid = int(self._tmux("list-panes", "-t", name, "-F", "#{pane_pid}").split()[0])

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name)

    def wait_for(self, text: str, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.screen():
                return True
            time.sleep(0.5)
        return False

    def measure(self, seconds: float) -> dict:
        time.sleep(SETTLE_S)
        c0, t0 = tree_cpu_s(self.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = tree_cpu_s(self.pid), time.monotonic()
        rss = sum(p.memory_info().rss for p in [psutil.Process(self.pid), *psutil.Process(self.pid).children(recursive=True)])
        return {"cpu_percent_of_one_core": round(100 * (c1 - c0) / (t1 - t0), 2), "seconds": round(t1 - t0, 1), "rss_mb": round(rss / 2**20, 1)}

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-session", "-t", self.name], capture_output=True)


def client_env(home: Path, agents: list[RunningAgent]) -> dict[str, str]:
    """A temporary XDG_CONFIG_HOME whose hosts.toml names each agent with its control token."""
    cfg = home / "config"
    (cfg / "sparkdeck").mkdir(parents=True, exist_ok=True)
    lines = [f'[hosts.bench{i}]\nurl = "{a.url}"\ntoken = "{a.control_token}"\n' for i, a in enumerate(agents)]
    (cfg / "sparkdeck" / "hosts.toml").write_text("\n".join(lines))
    os.chmod(cfg / "sparkdeck" / "hosts.toml", 0o600)
    return {"XDG_CONFIG_HOME": str(cfg), "TERM": "xterm-256color", "COLORTERM": "truecolor"}
