"""kill -9 of the agent mid-stream: the real client reconnects and backfills with no missing seq."""

from __future__ import annotations

import asyncio
import time

from tests.helpers.agent import launch_agent
from tests.helpers.calls import wait_until
from tui import client as c
from tui.client import AgentClient, Backoff, Target


async def test_kill_9_then_restart_client_backfills_without_gaps(tmp_path, record):
    state = tmp_path / "state"
    agent = launch_agent(state, "--simulate", "gb10", "--interval", "0.2")
    cl = AgentClient(Target("spark", agent.url, agent.read_token), backoff=Backoff(base_s=0.2, cap_s=1.0))
    task = asyncio.create_task(cl.run())
    again = None
    try:
        await wait_until(lambda: cl.state == c.LIVE and cl.frames >= 5)
        agent.proc.kill()
        agent.proc.wait(10)
        await wait_until(lambda: cl.state == c.RECONNECTING)
        assert cl.stale
        await asyncio.sleep(2.0)  # down for a while
        again = launch_agent(state, "--simulate", "gb10", "--interval", "0.2", port=agent.port, tokens=(agent.read_token, agent.control_token))
        up = time.monotonic()
        await wait_until(lambda: cl.state == c.LIVE, timeout=15)
        live_after = time.monotonic() - up
        await wait_until(lambda: cl.backfills >= 1 and len(cl.history) >= 25)
        seqs = cl.history.seqs()
        missing = sorted(set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
        record(
            "restart",
            "agent killed with SIGKILL mid-stream, restarted 2 s later; real client (tui/client.py)",
            f"live {live_after:.2f} s after the agent was up; {len(missing)} missing seq of {len(seqs)} after backfill",
        )
        assert live_after <= 5.0
        assert missing == []
    finally:
        await cl.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for a in (agent, again):
            if a and a.proc.poll() is None:
                a.proc.kill()
