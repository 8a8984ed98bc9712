"""The memory guard: a task on the agent's event loop that stops a runaway before the Spark freezes.

On the Spark the CPU and GPU share one pool of memory, and when it runs out the kernel
does not OOM-kill anything in time: the box freezes and needs a power cycle. The guard
reads MemAvailable every ``poll_s`` (a ~20 µs pread, not waiting for the 1 s sample) and,
where the kernel allows, wakes at once on a PSI trigger. When memory for models goes
below zero, or PSI full pressure stays high, it acts per ``memory_guard.action``; each
action is logged, audited (actor ``memory-guard``) and broadcast as a ``guard`` frame.

Its own path keeps to small objects: two kept-open proc files, a few dicts per action.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from agent.collectors.memory import models_available
from agent.containers.engine import EngineError
from agent.guard.policy import Cause, Tripwire, choose, eligible
from agent.guard.readers import MemoryReader, PsiTrigger
from agent.protocol import GuardFrame, encode, frame
from agent.settings import MemoryGuardSettings

log = logging.getLogger("sparkdeck.guard")

SETTLE_S = 3.0  # after a stop, how long memory may take to come back before the next container goes
ENGINE_SLACK_S = 10.0  # the stop request outlives the container's grace period by this much
FIGURES_WAIT_S = 2.0  # stop-largest waits at most this long after tripping for containers' first memory figures
RECENT_S = 600.0  # a stream opened this long after the guard's last action still gets its frame
GIB = 1024**3


def _no_figures(row: dict[str, Any], settings: MemoryGuardSettings) -> bool:
    return eligible(row, "stop-largest", any_container=settings.any_container, only_label=settings.only_label) and row.get("memory_bytes") is None


def _gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / GIB:.2f} GiB"


class MemoryGuard:
    def __init__(
        self,
        settings: MemoryGuardSettings,
        reserve_bytes: int,
        *,
        broadcast: Callable[[str], None],
        containers: Any = None,
        audit: Any = None,
        proc_root: str = "/proc",
    ):
        self.settings = settings
        self.reserve_bytes = reserve_bytes
        self.broadcast = broadcast
        self.containers = containers  # agent.containers.service.ContainerService, or None (nothing to stop)
        self.audit = audit  # agent.containers.audit.AuditLog
        self.proc_root = proc_root
        self.unified: bool | None = None  # learnt from the sampled GPUs
        self.reader = MemoryReader(proc_root)
        self.trigger: PsiTrigger | None = None
        self.make_trigger: Callable[[float, str], PsiTrigger] = PsiTrigger  # tests put a pipe in its place
        self.tripwire = Tripwire(reserve_bytes, settings.psi_full, settings.hold_s)
        self.tripped: Cause | None = None
        self.actions = 0
        self.last_event: GuardFrame | None = None
        self._wake = asyncio.Event()
        self._triggered = False  # the PSI trigger fired since the last check
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tried: set[str] = set()  # full ids stopped (or tried) in this episode
        self._told_nothing = False
        self._tripped_at = 0.0
        self._next_action_at = 0.0

    # -- state ------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """The setting, else on where memory is unified (known after the first GPU sample)."""
        if self.settings.enabled is not None:
            return self.settings.enabled
        return bool(self.unified)

    def note_frame(self, frame: dict[str, Any], _text: str = "") -> None:
        """Sampler listener: learns whether GPU memory is unified (the default for ``enabled``)."""
        for gpu in frame.get("gpus") or []:
            memory = gpu.get("memory")
            if memory:  # a GPU that fell off the bus reports none: it says nothing either way
                if memory.get("unified"):
                    self.unified = True  # sticky: a GB10 whose NVML breaks later still needs the guard
                elif self.unified is None:
                    self.unified = False

    def info(self) -> dict[str, Any]:
        """For /api/v1/info: whether the guard is armed and how."""
        return {
            "enabled": self.enabled,
            "action": self.settings.action,
            "reserve_bytes": self.reserve_bytes,
            "poll_s": self.settings.poll_s,
            "psi_full": self.settings.psi_full,
            "hold_s": self.settings.hold_s,
            "psi_trigger": self.trigger.path if self.trigger else "not armed",
            "tripped": self.tripped,
            "actions": self.actions,
            "last_event": self.last_event,
        }

    def recent_event(self) -> GuardFrame | None:
        """The last guard frame if it is under RECENT_S old: sent to each new stream after hello."""
        ev = self.last_event
        return ev if ev is not None and time.time() - ev["ts"] < RECENT_S else None

    # -- the loop -----------------------------------------------------------------------
    def _arm(self) -> None:
        if self.trigger is not None:
            return
        self.trigger = self.make_trigger(self.settings.psi_full, self.proc_root)
        self.tripwire.trigger_window_s = self.trigger.window_s or 2.0
        if self.trigger.armed and self._loop is not None:
            self._loop.add_reader(self.trigger.fileno(), self._on_trigger)
        log.info(
            "memory guard armed: %s, reserve %s, poll %.2fs, PSI trigger %s",
            self.settings.action,
            _gib(self.reserve_bytes),
            self.settings.poll_s,
            self.trigger.path,
        )

    def _on_trigger(self) -> None:
        # drained here, not in check(): a readiness left standing while check() awaits a slow
        # stop would make the event loop call this back in a busy loop
        if self.trigger is not None and self.trigger.drain():
            self._triggered = True
            self._wake.set()

    def _disarm(self) -> None:
        if self.trigger is not None:
            if self.trigger.armed and self._loop is not None:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(self.trigger.fileno())
            self.trigger.close()
            self.trigger = None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            while True:
                if not self.enabled:
                    self._disarm()
                    await asyncio.sleep(1.0)  # `enabled` may become known with the first GPU sample
                    continue
                self._arm()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
                self._wake.clear()
                try:
                    await self.check()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("memory guard check failed; continuing")
        finally:
            self._disarm()
            self.reader.close()

    async def check(self, now: float | None = None) -> None:
        """One look: read, decide, and act if it is time to."""
        now = time.monotonic() if now is None else now
        triggered, self._triggered = self._triggered, False
        available = self.reader.available_bytes()
        pressure = self.reader.full_pressure()
        cause = self.tripwire.update(now, available, pressure, triggered)
        if cause is None:
            if self.tripped is not None:
                log.info(
                    "memory guard: memory for models back to %s; standing down",
                    _gib(None if available is None else models_available(available, self.reserve_bytes)),
                )
                self.tripwire.reset()
                self._tried.clear()
                self._told_nothing = False
            self.tripped = None
            return
        first = self.tripped is None
        self.tripped = cause
        if first:
            self._tripped_at = now
        if now < self._next_action_at:
            return
        if self.settings.action == "warn":
            if first:  # once per episode
                self._emit(cause, "warned", available, pressure, None)
            return
        outcome = await self._stop_next(cause, available, pressure, waited_s=now - self._tripped_at)
        if outcome == "stopped":  # pressure is measured afresh from the end of the stop, not its start
            self.tripwire.acted(time.monotonic(), self.reader.full_pressure())
        if outcome != "wait":
            self._next_action_at = time.monotonic() + SETTLE_S

    async def _stop_next(self, cause: Cause, available: int | None, pressure: tuple[float, int] | None, *, waited_s: float) -> str:
        """Stop the next eligible container: 'stopped', 'none' (nothing eligible) or 'wait'."""
        svc = self.containers
        rows = svc.tracker.rows() if svc is not None else []
        if self.settings.action == "stop-largest" and waited_s < FIGURES_WAIT_S and any(_no_figures(r, self.settings) for r in rows):
            return "wait"  # just started: ranking by size needs the first stats read (about a second)
        victim = choose(
            rows,
            self.settings.action,
            started=svc.tracker.started if svc is not None else None,
            any_container=self.settings.any_container,
            only_label=self.settings.only_label,
            skip=self._tried,
        )
        if victim is None:
            if not self._told_nothing:  # once per episode, not every few seconds
                self._told_nothing = True
                self._emit(cause, "nothing-eligible", available, pressure, None)
            return "none"
        self._tried.add(victim["full_id"])
        if svc is not None:
            svc.tracker.note_stop_request(victim["full_id"])  # memory-guard alerts it; no second alert as an exit
        result, how = await self._stop(victim["full_id"])
        message = self._emit(cause, result, available, pressure, victim, how)
        if result == "stopped" and victim.get("model"):
            svc.launcher.stopped_by_guard(victim["model"], f"stopped by the memory guard: {message}")
        with contextlib.suppress(Exception):
            await svc.tracker.refresh(victim["full_id"])  # the next frame shows it stopped
        return "stopped"

    async def _stop(self, cid: str) -> tuple[str, str]:
        """Stop with a short grace, then kill: ('stopped' | 'failed', how)."""
        engine = self.containers.engine
        grace = math.ceil(self.settings.stop_timeout_s)
        try:
            await engine.call("POST", f"containers/{cid}/stop", params={"t": str(grace)}, timeout_s=grace + ENGINE_SLACK_S)
            return "stopped", f"SIGTERM, SIGKILL after {grace} s"
        except EngineError as exc:
            if exc.status == 304:
                return "stopped", "it had already stopped"
            first_error = exc.message
        try:
            await engine.call("POST", f"containers/{cid}/kill", timeout_s=ENGINE_SLACK_S)
            return "stopped", f"killed (stop failed: {first_error})"
        except EngineError as exc:
            return "failed", f"stop failed ({first_error}), kill failed ({exc.message})"

    # -- telling everyone -----------------------------------------------------------------
    def _emit(self, cause: Cause, result: str, available: int | None, pressure: tuple[float, int] | None, victim: dict[str, Any] | None, how: str = "") -> str:
        """Log, audit and broadcast one action; returns its message."""
        short = None if available is None else models_available(available, self.reserve_bytes)
        why = (
            f"memory for models {_gib(short)} (available {_gib(available)} − reserve {_gib(self.reserve_bytes)})"
            if cause == "memory"
            else f"memory pressure: tasks stalled on memory ≥ {self.settings.psi_full:g}% of the time for {self.settings.hold_s:g} s"
            f" (PSI full avg10 {f'{pressure[0]:.1f}%' if pressure else 'n/a'}{', trigger fired' if self.trigger is not None and self.trigger.armed and self.tripwire.last_trigger is not None else ''})"
        )
        target = None
        if victim is not None:
            target = {k: victim.get(k) for k in ("id", "name", "model", "memory_bytes", "gpu_memory_bytes")}
            message = f"{result} {victim.get('name')}{' (model ' + victim['model'] + ')' if victim.get('model') else ''}: {how}; {why}"
        elif result == "nothing-eligible":
            message = f"nothing eligible to stop ({self.settings.action}); {why}"
        else:
            message = f"warning: {why}"
        event = frame(
            "guard",
            ts=round(time.time(), 3),
            action=self.settings.action,
            cause=cause,
            result=result,
            message=message,
            available_bytes=available,
            reserve_bytes=self.reserve_bytes,
            models_available_bytes=short,
            full_avg10=pressure[0] if pressure else None,
            container=target,
        )
        self.actions += 1
        self.last_event = event
        (log.error if result == "failed" else log.warning)("memory guard: %s", message)
        if self.audit is not None:
            try:
                self.audit.append(
                    token="memory-guard",
                    client="agent",
                    action="stop" if victim is not None else "warn",
                    target=(victim.get("name") or victim["id"]) if victim is not None else "-",
                    result="ok" if result in ("stopped", "warned") else result,
                    detail=message,
                )
            except OSError as exc:
                log.error("memory guard: could not write the audit log: %s", exc)
        self.broadcast(encode(event))
        return message
