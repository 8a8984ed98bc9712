"""Small tools the fault tests share: a frame watcher that measures gaps."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

from websockets.asyncio.client import connect


class Watcher:
    """One stream client that records every snapshot's seq and arrival time."""

    def __init__(self, agent):
        self.agent = agent
        self.arrivals: list[tuple[float, dict]] = []
        self.latency_ms: list[float] = []  # wall-clock receive time minus the frame's ts
        self._task: asyncio.Task | None = None
        self._stop = asyncio.Event()

    async def _run(self) -> None:
        async with connect(self.agent.ws_url, additional_headers=self.agent.headers(self.agent.read_token), max_size=2**22) as ws:
            while not self._stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                f = json.loads(raw)
                if f["type"] == "snapshot":
                    self.arrivals.append((time.monotonic(), f))
                    self.latency_ms.append(1000 * (time.time() - f["ts"]))

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._run())
        deadline = time.monotonic() + 10
        while not self.arrivals and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc) -> None:
        self._stop.set()
        if self._task:
            await asyncio.gather(self._task, return_exceptions=True)

    def since(self, t: float) -> list[dict]:
        return [f for at, f in self.arrivals if at >= t]

    def max_gap_s(self, after: float = 0.0) -> float:
        times = [at for at, _ in self.arrivals if at >= after]
        return max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))

    def seqs(self) -> list[int]:
        return [f["seq"] for _, f in self.arrivals]


def masked_text_frame(text: str) -> bytes:
    """One client->server WebSocket text frame (RFC 6455: clients must mask), for raw sockets."""
    return masked_frame(0x1, text.encode())


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client->server frame: 0x1 text, 0x9 ping."""
    import os
    import struct

    n = len(payload)
    head = struct.pack("!B", 0x80 | opcode)
    if n < 126:
        head += struct.pack("!B", 0x80 | n)
    elif n < 1 << 16:
        head += struct.pack("!BH", 0x80 | 126, n)
    else:
        head += struct.pack("!BQ", 0x80 | 127, n)
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + body
