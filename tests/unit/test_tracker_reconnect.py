"""The container list during a reconnect: never containers under an "unavailable" status.

The engine is faked at the Engine boundary (its call/ping/stream_lines), so the
reconnect's inspect can be held open the way a just-restarted dockerd holds it.
CI once saw the restarted engine's container listed in a frame that still said
"unavailable" (tests/integration/test_containers_engine_restart.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from agent.containers.engine import Engine
from agent.containers.tracker import ContainerTracker

CID = "c0ffee" * 10 + "abcd"
LISTING = [{"Id": CID, "Names": ["/survivor"], "Image": "busybox", "State": "running", "Status": "Up 1 second", "Created": 1, "Ports": [], "Labels": {}}]


class HeldEngine(Engine):
    def __init__(self) -> None:
        super().__init__("unix:///nonexistent.sock")
        self.inspect_started = asyncio.Event()
        self.release = asyncio.Event()

    async def ping(self) -> None:
        return None

    async def call(self, method: str, path: str, *, params: dict | None = None, body: Any = None, timeout_s: float | None = None) -> Any:
        if path == "containers/json":
            return LISTING
        self.inspect_started.set()
        await self.release.wait()
        return {"State": {"Pid": 4242, "StartedAt": "2026-12-02T10:00:00.5Z"}}

    async def stream_lines(self, method: str, path: str, *, params: dict | None = None) -> AsyncIterator[dict]:
        await asyncio.Event().wait()  # an event stream with nothing to say
        yield {}


async def test_containers_appear_with_ok_status_not_before() -> None:
    engine = HeldEngine()
    tracker = ContainerTracker(engine, interval_s=60)
    await tracker.start(wait_s=0)
    try:
        await asyncio.wait_for(engine.inspect_started.wait(), 5)
        assert tracker.entries  # the listing is in, its inspect is not
        rows, status = tracker.snapshot([])
        assert (rows, status["state"]) == ([], "unavailable")
        assert [r["name"] for r in tracker.rows()] == ["survivor"]  # what the fit check and the guard count meanwhile
        engine.release.set()
        await asyncio.wait_for(tracker.connected.wait(), 5)
        rows, status = tracker.snapshot([])
        assert status["state"] == "ok" and [r["name"] for r in rows] == ["survivor"]
    finally:
        await tracker.stop()
