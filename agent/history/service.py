"""Wires the history store and the seq file into the sampler and the ring."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent.history.seqfile import SeqFile
from agent.history.series import flatten
from agent.history.store import HistoryStore
from agent.ring import Ring
from agent.sampler import Sampler
from agent.settings import AgentSettings

log = logging.getLogger("sparkdeck.history")

PRUNE_EVERY_S = 60.0


class HistoryService:
    def __init__(self, settings: AgentSettings):
        self.settings = settings
        self.seqfile = SeqFile(settings.state_dir / "seq")
        self.store = HistoryStore(
            settings.state_dir / "history.sqlite3",
            raw_s=settings.history_raw_s,
            tier10_s=settings.history_10s_s,
            tier60_s=settings.history_60s_s,
        )

    async def restore(self, sampler: Sampler, ring: Ring) -> None:
        """Continue seq after the last one ever published and refill the ring from disk."""
        last = max(self.seqfile.last(), await self.store.max_seq())
        sampler.seq = max(sampler.seq, last)
        recent = await self.store.recent(min(self.settings.buffer_s, self.settings.history_raw_s))
        ring.load([r for r in recent if r[0] <= last])
        if last:
            log.info("continuing at seq %d; %d frame(s) restored for backfill", last + 1, len(ring))

    async def before_publish(self, frame: dict[str, Any], text: str, blob: bytes) -> None:
        # stored first, then marked published: a crash in between leaves the frame on disk to
        # replay, never a seq that was counted but exists nowhere
        await self.store.append(frame["seq"], frame["ts"], blob, flatten(frame))
        self.seqfile.store(frame["seq"])
        self.store.sync_soon()  # to the disk too, for the samples before a freeze (see store.py)

    async def prune_loop(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            await self.store.prune()

    def close(self) -> None:
        self.store.close()
        self.seqfile.close()
