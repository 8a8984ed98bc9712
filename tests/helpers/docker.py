"""The Docker engine the tests share: a label per test session, the docker CLI for set-up."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass

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


def docker_problem() -> str | None:
    try:
        res = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker CLI unusable: {exc}"
    if res.returncode != 0:
        return (res.stderr.strip() or res.stdout.strip()).splitlines()[-1] if (res.stderr or res.stdout).strip() else "docker info failed"
    return None
