"""Throttle events: each GPU clock-event reason as an interval with a start and an end.

NVML reports which reasons hold the clocks down *now*; a sample-by-sample list is hard
to read and easy to miss at 1 Hz. This turns the samples into intervals: a reason that
appears on a GPU opens an event, and the first sample without it closes the event. An
event still open has ``end`` null. ``gpu_idle`` is left out: an idle GPU clocking down is
not throttling. A sample whose reasons are unknown (the GPU errored or the field is n/a)
changes nothing: the event is neither closed nor opened on a guess.

Events live in a bounded in-memory list (the API's answer when history is off) and, with
history on, in the history database's ``events`` table, written on the store's own
thread without the sampler waiting. After a restart, events a previous run left open are
closed at that run's last stored frame.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from agent import protocol

log = logging.getLogger("sparkdeck.events")

MEMORY_EVENTS = 2000  # kept in memory; older ones are only in the history database
MAX_RESULTS = 5000  # one answer of GET /api/v1/events at most


def overlaps(event: dict[str, Any], start: float, end: float) -> bool:
    return event["start"] <= end and (event["end"] is None or event["end"] >= start)


class ThrottleEvents:
    def __init__(self, store: Any = None):
        self.store = store  # a HistoryStore, or None with history off
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=MEMORY_EVENTS)
        self.open: dict[tuple[int, str], dict[str, Any]] = {}
        self.next_id = 1

    async def restore(self) -> None:
        """Continue ids after the stored ones; close what the last run left open."""
        if self.store is not None:
            self.next_id = await self.store.close_open_events() + 1

    def note_frame(self, frame: dict[str, Any], text: str = "") -> None:
        ts = frame["ts"]
        changed: list[dict[str, Any]] = []
        gpus = {g["index"]: g for g in frame.get("gpus") or []}
        for idx, active in protocol.throttle_active(frame).items():
            for key in [k for k in self.open if k[0] == idx and k[1] not in active]:
                event = self.open.pop(key)
                event["end"] = ts
                changed.append(event)
            for reason in sorted(active):
                if (idx, reason) not in self.open:
                    event = {"id": self.next_id, "kind": "throttle", "gpu": idx, "gpu_uuid": gpus[idx].get("uuid"), "reason": reason, "start": ts, "end": None}
                    self.next_id += 1
                    self.open[(idx, reason)] = event
                    self.recent.append(event)
                    changed.append(event)
        if changed and self.store is not None:
            self.store.write_events([dict(e) for e in changed])

    async def query(self, start: float, end: float, limit: int = MAX_RESULTS) -> list[dict[str, Any]] | None:
        """Events overlapping [start, end], oldest first; None when the store cannot answer."""
        if self.store is not None:
            return await self.store.events(start, end, limit)
        return [dict(e) for e in self.recent if overlaps(e, start, end)][:limit]
