"""SIGUSR1 makes a running agent write every thread's stack to its log and carry on serving:
how a hung agent is diagnosed (the test fixture sends it after a failed test)."""

from __future__ import annotations

import signal
import time

import httpx


def test_sigusr1_dumps_stacks_and_the_agent_keeps_serving(start_agent) -> None:
    agent = start_agent("--simulate", "gb10", "--interval", "0.2")
    agent.proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while "most recent call first" not in agent.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "most recent call first" in agent.log(), agent.log()[-2000:]
    assert "agent/server.py" in agent.log() or "uvicorn" in agent.log()
    assert agent.proc.poll() is None
    r = httpx.get(agent.url + "/api/v1/snapshot", headers=agent.headers(agent.read_token), timeout=10)
    assert r.status_code == 200 and r.json()["host"]
