"""The in-memory ring of recent snapshot frames, for backfill after a reconnect.

Frames are kept as already-encoded JSON, zlib-compressed (an hour at 1 Hz is
~3,600 frames: compressed they cost a few MB instead of tens). The newest frame is
also kept uncompressed, because ``/api/v1/snapshot`` serves it on every call.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import NamedTuple


class Entry(NamedTuple):
    seq: int
    ts: float
    blob: bytes


class Ring:
    def __init__(self, maxlen: int):
        self._items: deque[Entry] = deque(maxlen=max(1, maxlen))
        self.latest_text: str | None = None
        self.latest_seq: int | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def oldest_seq(self) -> int | None:
        return self._items[0].seq if self._items else None

    @staticmethod
    def pack(text: str) -> bytes:
        return zlib.compress(text.encode(), 1)

    def append(self, seq: int, ts: float, text: str, blob: bytes | None = None) -> None:
        self._items.append(Entry(seq, ts, blob if blob is not None else self.pack(text)))
        self.latest_text, self.latest_seq = text, seq

    def load(self, entries: list[tuple[int, float, bytes]]) -> None:
        """Refill from stored frames (after a restart), oldest first."""
        for seq, ts, blob in entries:
            self._items.append(Entry(seq, ts, blob))
        if self._items:
            last = self._items[-1]
            self.latest_text, self.latest_seq = self.text(last), last.seq

    def after(self, seq: int) -> list[Entry]:
        """Entries with a larger seq, oldest first (a copy: safe across awaits)."""
        if not self._items or self._items[-1].seq <= seq:
            return []
        return [e for e in self._items if e.seq > seq]

    @staticmethod
    def text(entry: Entry) -> str:
        return zlib.decompress(entry.blob).decode()
