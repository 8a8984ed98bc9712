"""At start: did the previous run end cleanly? If not, write an incident. At a clean stop: say so.

Wired in agent/runtime.py: ``start`` runs after the history store is restored and before
the first sample of this run is stored (so the newest stored frames are the last run's),
``stopped_cleanly`` at the very end of ``Agent.stop`` (after history is closed, so a stop
that hangs or dies on the way is not called clean).
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from typing import Any

from agent import __version__
from agent.containers.audit import AuditLog
from agent.incidents import records
from agent.incidents.store import IncidentLog, RunMarker, boot_id
from agent.settings import AgentSettings

log = logging.getLogger("sparkdeck.incidents")


class IncidentService:
    def __init__(self, settings: AgentSettings, history: Any = None):
        self.settings = settings
        self.history = history  # HistoryStore or None (history off: incidents without samples)
        self.marker = RunMarker(settings.state_dir / "run.json")
        self.log = IncidentLog(settings.state_dir / "incidents.json")
        self.boot_id = boot_id()
        self.started = time.time()
        self.marked = False  # this run's "running" marker is written

    @property
    def count(self) -> int:
        return len(self.log.items)

    def listing(self) -> dict[str, Any]:
        return {"incidents": self.log.newest_first(), "kept": self.log.keep}

    async def start(self) -> dict[str, Any] | None:
        """Record an incident for the previous run if it did not stop cleanly, then mark this run."""
        prev = self.marker.previous()
        incident = None
        if prev is not None and prev.get("state") == "running":
            incident = await self._incident(prev)
            self.log.add(incident)
            log.warning(
                "the previous run (started %s) did not end cleanly: %s, %s; GET /api/v1/incidents",
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(prev.get("started") or 0)),
                incident["kind"],
                incident["cause_text"],
            )
        self.marked = True
        self.marker.write({"state": "running", "boot_id": self.boot_id, "started": self.started, "pid": os.getpid(), "agent_version": __version__})
        return incident

    def stopped_cleanly(self) -> None:
        if not self.marked:
            return  # start never got this far: keep the previous run's marker for the next start
        self.marker.write(
            {"state": "stopped", "boot_id": self.boot_id, "started": self.started, "stopped": time.time(), "pid": os.getpid(), "agent_version": __version__}
        )

    async def _incident(self, prev: dict[str, Any]) -> dict[str, Any]:
        before = prev.get("boot_id")
        # no boot id on either side (no /proc): a reboot cannot be told apart, so say crash
        kind = "host-reboot" if before and self.boot_id and before != self.boot_id else "agent-crash"
        frames = []
        if self.history is not None:
            since = prev.get("started") if isinstance(prev.get("started"), (int, float)) else 0.0
            for _seq, _ts, blob in await self.history.run_frames(since, records.WINDOW_S):
                try:
                    frames.append(json.loads(zlib.decompress(blob)))
                except (zlib.error, ValueError):
                    continue  # a damaged row: the others still tell the story
        s = self.settings
        return records.build(
            incident_id=self.log.next_id(),
            kind=kind,
            detected_at=time.time(),
            run=prev,
            frames=frames,
            reserve_bytes=int(s.memory.reserve_gib * records.GiB),
            psi_full_limit=s.memory_guard.psi_full,
            throttle_c=s.noise.throttle_c,
            ignore_sensors=s.noise.ignore_sensors,
            audit=AuditLog(s.state_dir / "audit.log").tail(500),
        )
