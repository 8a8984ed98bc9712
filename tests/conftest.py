"""Shared fixtures: a real agent process on a free loopback port, with tokens.

``start_agent(*args)`` runs ``python -m agent.cli serve`` as a subprocess (a real
uvicorn server), waits for its "listening" log line and returns a RunningAgent
with its URL, a read and a control token, and helpers to stop or kill it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from agent.auth import TokenStore

ROOT = Path(__file__).resolve().parent.parent


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


def launch_agent(state_dir: Path, *args: str, port: int | None = None, env: dict[str, str] | None = None, tokens: tuple[str, str] | None = None, wrap: tuple[str, ...] = ()) -> RunningAgent:
    # wrap: a command the agent runs under, e.g. ("setpriv", "--bounding-set=-dac_override")
    store = TokenStore(state_dir / "tokens.json")
    if tokens is None:
        tokens = (store.add("reader", "read"), store.add("controller", "control"))
    port = port or free_port()
    # the memory guard is on by default with --simulate gb10: test agents share one Docker engine with
    # other runs, so by default each may act only on containers this session labelled (tests override it)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "SPARKDECK_MEMORY_GUARD__ONLY_LABEL": DOCKER_TEST_LABEL, **(env or {})}
    full_env.pop("SPARKDECK_CONFIG", None)
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


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator:
    """Factory: start_agent('--simulate', 'gb10', '--interval', '0.1') -> RunningAgent."""
    running: list[RunningAgent] = []

    def start(*args: str, **kw) -> RunningAgent:
        state = kw.pop("state_dir", None) or tmp_path / f"state{len(running)}"
        agent = launch_agent(Path(state), *args, **kw)
        running.append(agent)
        return agent

    yield start
    for agent in running:
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(10)


# ---- Docker engine (issue B) -------------------------------------------------------

DOCKER_TEST_IMAGE = "sparkdeck-test/busybox:latest"
# every container a test session starts carries this label with the session's own value, so
# cleanup removes this session's containers and never those of another run on the same engine
DOCKER_TEST_SESSION = f"{os.getpid()}-{int(time.time())}"
DOCKER_TEST_LABEL = f"sparkdeck.test={DOCKER_TEST_SESSION}"


@dataclass
class DockerEngine:
    """The docker CLI for test set-up (the agent itself never shells out to it)."""

    image: str = DOCKER_TEST_IMAGE
    session: str = DOCKER_TEST_SESSION

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        res = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed: {res.stderr.strip()}")
        return res.stdout.strip()

    def run(self, *args: str, name: str | None = None) -> str:
        """`docker run -d` a labelled test container; returns its id."""
        extra = ["--name", name] if name else []
        return self.cli("run", "-d", "--label", DOCKER_TEST_LABEL, *extra, *args)

    def pid(self, ref: str) -> int:
        return int(self.cli("inspect", "-f", "{{.State.Pid}}", ref))

    def cleanup(self) -> None:
        ids = self.cli("ps", "-aq", "--filter", f"label={DOCKER_TEST_LABEL}", check=False).split()
        if ids:
            self.cli("rm", "-f", *ids, check=False)


def _docker_problem() -> str | None:
    try:
        res = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker CLI unusable: {exc}"
    if res.returncode != 0:
        return (res.stderr.strip() or res.stdout.strip()).splitlines()[-1] if (res.stderr or res.stdout).strip() else "docker info failed"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A reachable Docker engine with the test image built; skips LOUDLY without one,
    and fails instead when SPARKDECK_REQUIRE_DOCKER=1 (CI), so green CI means these ran."""
    problem = _docker_problem()
    if problem is not None:
        message = (
            f"DOCKER TESTS NOT RUN: no Docker engine reachable ({problem}). "
            "Start dockerd (see scripts/docker-test-image.sh) to run them."
        )
        if os.environ.get("SPARKDECK_REQUIRE_DOCKER") == "1":
            pytest.fail(message + " SPARKDECK_REQUIRE_DOCKER=1 makes this a failure.", pytrace=False)
        pytest.skip(message)
    build = subprocess.run(["bash", str(ROOT / "scripts" / "docker-test-image.sh"), DOCKER_TEST_IMAGE], capture_output=True, text=True, timeout=300)
    if build.returncode != 0:
        pytest.fail(f"could not build the Docker test image: {build.stderr.strip()}", pytrace=False)
    engine = DockerEngine()
    engine.cleanup()
    yield engine
    engine.cleanup()
