"""The engine fails in the middle of a followed log stream: an error frame, then close code 1011 (docs/protocol.md)."""

from __future__ import annotations

import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agent.protocol import CLOSE_ENGINE_ERROR
from tests.helpers.calls import next_frame
from tests.helpers.engine_proxy import EngineProxy

pytestmark = [pytest.mark.docker, pytest.mark.asyncio]

TICKER = ["sh", "-c", "while true; do echo tick; sleep 0.2; done"]


async def test_engine_cut_mid_log_stream_closes_with_1011(docker_engine, start_agent, tmp_path, record) -> None:
    name = f"sdcut-{docker_engine.session}"
    docker_engine.run(docker_engine.image, *TICKER, name=name)
    async with EngineProxy(tmp_path / "engine.sock") as proxy:
        agent = start_agent("--simulate", "gb10", env={"SPARKDECK_DOCKER_HOST": proxy.url})
        url = agent.ws_url.replace("/api/v1/stream", f"/api/v1/containers/{name}/logs/stream")
        async with connect(url, additional_headers=agent.headers(agent.control_token), open_timeout=15) as ws:
            await next_frame(ws, lambda f: f.get("type") == "log" and f["text"] == "tick", 30, "a log line")
            assert proxy.logs_followed == 1  # the stream really goes through the proxy
            proxy.cut_logs.set()
            cut_at = time.monotonic()
            frames = []
            with pytest.raises(ConnectionClosed) as closed:
                while time.monotonic() - cut_at < 30:
                    frames.append(json.loads(await ws.recv()))
            took = time.monotonic() - cut_at
        record(
            "engine",
            "the Docker engine drops a followed log stream mid-answer",
            f"error frame then close {closed.value.rcvd.code if closed.value.rcvd else None} after {took:.2f}s",
        )
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_ENGINE_ERROR, (closed.value, frames[-3:])
        errors = [f for f in frames if f["type"] == "error"]
        assert errors and errors[-1]["code"] == "engine_error", frames[-3:]
        assert all(f["type"] != "log_end" for f in frames)  # not mistaken for the container stopping
        assert agent.proc.poll() is None and "Traceback" not in agent.log()
    docker_engine.cli("rm", "-f", name, check=False)
