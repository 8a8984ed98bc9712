"""A real agent process on a free loopback port, with tokens.

``launch_agent(state_dir, *args)`` runs ``python -m agent.cli serve`` as a subprocess (a real
uvicorn server), waits for its "listening" log line and returns a RunningAgent with its URL,
a read and a control token, and helpers to stop or kill it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from agent.auth import TokenStore
from tests.helpers.docker import DOCKER_TEST_LABEL

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningAgent:
    proc: subprocess.Popen
    url: str
    port: int
    state_dir: Path
    read_token: str
    control_token: str
    log_lines: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/api/v1/stream"

    def headers(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def rss(self) -> int:
        return psutil.Process(self.proc.pid).memory_info().rss

    def log(self) -> str:
        return "".join(self.log_lines)

    def listening_addresses(self) -> set[str]:
        """The addresses the agent's own socket is bound to on its port: what it listens on, not what a client can reach."""
        conns = psutil.Process(self.proc.pid).net_connections(kind="inet")
        return {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == self.port}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def _pump(proc: subprocess.Popen, lines: list[str], ready: threading.Event) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "listening on" in line:
            ready.set()
    ready.set()


def launch_agent(
    state_dir: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None, tokens: tuple[str, str] | None = None, wrap: tuple[str, ...] = ()
) -> RunningAgent:
    # wrap: a command the agent runs under, e.g. ("setpriv", "--bounding-set=-dac_override")
    store = TokenStore(state_dir / "tokens.json")
    if tokens is None:
        tokens = (store.add("reader", "read"), store.add("controller", "control"))
    port = port or free_port()
    # the memory guard is on by default with --simulate gb10: test agents share one Docker engine with
    # other runs, so by default each may act only on containers this session labelled (tests override it)
    # the caller's shell may point at a real config; a test that means one passes it in env
    inherited = {k: v for k, v in os.environ.items() if k != "SPARKDECK_CONFIG"}
    full_env = {**inherited, "PYTHONUNBUFFERED": "1", "SPARKDECK_MEMORY_GUARD__ONLY_LABEL": DOCKER_TEST_LABEL, **(env or {})}
    proc = subprocess.Popen(
        [*wrap, sys.executable, "-m", "agent.cli", "serve", "--port", str(port), "--state-dir", str(state_dir), *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    threading.Thread(target=_pump, args=(proc, lines, ready), daemon=True).start()
    if not ready.wait(30) or proc.poll() is not None:
        proc.kill()
        raise RuntimeError("agent did not start:\n" + "".join(lines))
    return RunningAgent(proc, f"http://127.0.0.1:{port}", port, state_dir, tokens[0], tokens[1], lines)
