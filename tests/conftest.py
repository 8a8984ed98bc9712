"""Shared fixtures: ``start_agent`` (a real agent process, killed after the test; its log is printed
when the test failed) and ``docker_engine`` (the real engine, with the test image built).
The pieces they are made of live in tests/helpers/ (bench/ imports them too)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.agent import ROOT, RunningAgent, launch_agent
from tests.helpers.docker import DOCKER_TEST_IMAGE, DockerEngine, docker_problem
from tests.helpers.sshd import sshd  # noqa: F401  (a fixture: a real sshd for the ssh:// tests)

_failed = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if outcome.get_result().failed:
        item.stash[_failed] = True


def _report(agent: RunningAgent) -> None:
    """After a failed test: the agent's stacks (faulthandler on SIGUSR1, test hooks) and its last log lines."""
    if agent.proc.poll() is None:
        try:
            agent.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
        except OSError:
            pass
    tail = "".join(agent.log_lines[-200:])
    print(f"\n---- agent on port {agent.port} (pid {agent.proc.pid}), last log lines ----\n{tail}")


@pytest.fixture
def start_agent(request, tmp_path: Path) -> Iterator:
    """Factory: start_agent('--simulate', 'gb10', '--interval', '0.1') -> RunningAgent."""
    running: list[RunningAgent] = []

    def start(*args: str, **kw) -> RunningAgent:
        state = kw.pop("state_dir", None) or tmp_path / f"state{len(running)}"
        agent = launch_agent(Path(state), *args, **kw)
        running.append(agent)
        return agent

    yield start
    failed = request.node.stash.get(_failed, False)
    for agent in running:
        if failed:
            _report(agent)
        if agent.proc.poll() is None:
            agent.proc.kill()
            agent.proc.wait(10)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A reachable Docker engine with the test image built; skips LOUDLY without one,
    and fails instead when SPARKDECK_REQUIRE_DOCKER=1 (CI), so green CI means these ran."""
    problem = docker_problem()
    if problem is not None:
        message = f"DOCKER TESTS NOT RUN: no Docker engine reachable ({problem}). Start dockerd (see scripts/docker-test-image.sh) to run them."
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
