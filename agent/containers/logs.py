"""Container logs: the engine's multiplexed stream split into marked stdout/stderr lines.

Without a TTY the engine prefixes each chunk with 8 bytes: stream (1 = stdout,
2 = stderr), three zero bytes, then a big-endian length. With a TTY it sends
the raw terminal output, all of it stdout.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from typing import Any

from agent.containers.engine import Engine

STREAMS = {0: "stdout", 1: "stdout", 2: "stderr"}
MAX_TAIL = 10_000


class Demux:
    """Feed raw bytes, get complete (stream, line) pairs; partial lines wait for their end."""

    def __init__(self, tty: bool):
        self.tty = tty
        self._buf = b""
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}

    def feed(self, data: bytes) -> list[tuple[str, str]]:
        chunks: list[tuple[str, bytes]] = []
        if self.tty:
            chunks.append(("stdout", data))
        else:
            self._buf += data
            while len(self._buf) >= 8:
                kind, size = self._buf[0], struct.unpack(">I", self._buf[4:8])[0]
                if len(self._buf) < 8 + size:
                    break
                chunks.append((STREAMS.get(kind, "stdout"), self._buf[8 : 8 + size]))
                self._buf = self._buf[8 + size :]
        out: list[tuple[str, str]] = []
        for stream, payload in chunks:
            text = self._partial[stream] + payload
            *lines, self._partial[stream] = text.split(b"\n")
            out.extend((stream, line.decode("utf-8", "replace").rstrip("\r")) for line in lines)
        return out

    def flush(self) -> list[tuple[str, str]]:
        out = [(s, b.decode("utf-8", "replace")) for s, b in self._partial.items() if b]
        self._partial = {"stdout": b"", "stderr": b""}
        return out


def _line(stream: str, raw: str) -> dict[str, Any]:
    head, sep, text = raw.partition(" ")  # requested with timestamps=1: "2026-01-01T00:00:00.000000000Z text"
    ts: str | None = head
    if not sep or not head[:4].isdigit():
        ts, text = None, raw
    return {"stream": stream, "ts": ts, "text": text}


async def _lines(engine: Engine, cid: str, tail: int, follow: bool) -> AsyncIterator[dict[str, Any]]:
    info = await engine.call("GET", f"containers/{cid}/json")
    demux = Demux(bool((info.get("Config") or {}).get("Tty")))
    params = {"stdout": "1", "stderr": "1", "timestamps": "1", "tail": str(tail), "follow": "1" if follow else "0"}
    async for chunk in engine.stream_raw(f"containers/{info['Id']}/logs", params=params):
        for stream, raw in demux.feed(chunk):
            yield _line(stream, raw)
    for stream, raw in demux.flush():
        yield _line(stream, raw)


async def tail(engine: Engine, cid: str, n: int) -> list[dict[str, Any]]:
    return [line async for line in _lines(engine, cid, n, follow=False)]


def follow(engine: Engine, cid: str, n: int) -> AsyncIterator[dict[str, Any]]:
    """Last ``n`` lines, then new ones until the container stops (the engine ends the stream)."""
    return _lines(engine, cid, n, follow=True)
