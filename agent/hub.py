"""Fan-out of encoded frames to stream clients, never waiting on any of them.

Each client has a small bounded deque of live frames: when it falls behind, the
oldest frames are dropped for it alone (latest wins), so a stalled client can
neither delay the others nor grow the agent's memory. Frames are encoded once by
the sampler and the same string goes to every client. Control items (hello,
error frames, replay requests, close requests) travel in a second queue, served
first and bounded both in items and in bytes, so whatever a client sends, the
frames queued for it stay under CONTROL_LIMIT items and CONTROL_BYTES.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agent.budget import ReplayBudget

CONTROL_LIMIT = 32  # pending control items per client; beyond it the client is misbehaving
CONTROL_BYTES = 128 * 1024  # pending control frame text per client (a model_state with its log tail is a few KB)


@dataclass(frozen=True)
class Replay:
    since_seq: int


@dataclass(frozen=True)
class Close:
    code: int
    reason: str


class StreamClient:
    def __init__(self, *, queue_size: int, token_name: str, token_created: float, scope: str, peer: str):
        self.live: deque[tuple[int, str]] = deque(maxlen=queue_size)
        self.control: deque[object] = deque()
        self.control_bytes = 0  # text length of the str items in ``control``
        self.replays = ReplayBudget()
        self._wake = asyncio.Event()
        self.token_name = token_name
        self.token_created = token_created
        self.scope = scope
        self.peer = peer
        self.every = 1
        self.last_sent = 0
        self.dropped = 0
        self.closing = False
        self.remote_closed = False
        # fast path: a live frame for an idle client (nothing queued, its writer task parked) is
        # written by publish() itself, sparing a task wake-up per client per frame; ``busy`` is
        # set by the writer task while it handles an item, so a replay is never overtaken
        self.direct: Callable[[int, str], bool] | None = None
        self.busy = False

    def offer(self, seq: int, text: str) -> None:
        if self.closing or seq % self.every:
            return
        if self.direct is not None and not self.busy and not self.live and not self.control and seq > self.last_sent and self.direct(seq, text):
            self.last_sent = seq
            return
        if len(self.live) == self.live.maxlen:
            self.dropped += 1
        self.live.append((seq, text))
        self._wake.set()

    def push_control(self, item: object) -> bool:
        """Queue a control item; False when the queue is full (in items or bytes)."""
        size = len(item) if isinstance(item, str) else 0
        if not isinstance(item, Close) and (len(self.control) >= CONTROL_LIMIT or self.control_bytes + size > CONTROL_BYTES):
            return False
        self.control.append(item)
        self.control_bytes += size
        self._wake.set()
        return True

    def close(self, code: int, reason: str) -> None:
        if not self.closing:
            self.closing = True
            self.control.appendleft(Close(code, reason))
            self._wake.set()

    async def next(self) -> object:
        """The next control item, else the next live (seq, text) frame."""
        while True:
            if self.control:
                item = self.control.popleft()
                if isinstance(item, str):
                    self.control_bytes -= len(item)
                return item
            if self.live:
                return self.live.popleft()
            self._wake.clear()
            await self._wake.wait()


class Hub:
    def __init__(self) -> None:
        self.clients: set[StreamClient] = set()
        self.taps: list[Callable[[str], None]] = []  # see every broadcast frame (the alert engine)

    def add(self, client: StreamClient) -> None:
        self.clients.add(client)

    def remove(self, client: StreamClient) -> None:
        self.clients.discard(client)

    def publish(self, seq: int, text: str) -> None:
        for client in self.clients:
            client.offer(seq, text)

    def broadcast(self, text: str, read_text: str | None = None) -> None:
        """An event frame for every client (e.g. pull progress); dropped for a client whose queue is full.
        ``read_text``, when given, is what read-token clients get instead (a frame without what
        only a control token may see, e.g. a failed model's log lines)."""
        for client in self.clients:
            client.push_control(read_text if read_text is not None and client.scope != "control" else text)
        for tap in self.taps:
            try:
                tap(text)
            except Exception:  # a tap must never cost a broadcast
                logging.getLogger("sparkdeck.hub").exception("broadcast tap failed")

    def close_where(self, predicate: Callable[[StreamClient], bool], code: int, reason: str) -> int:
        hit = [c for c in self.clients if predicate(c)]
        for c in hit:
            c.close(code, reason)
        return len(hit)
