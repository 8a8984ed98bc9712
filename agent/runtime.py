"""The running agent: settings, tokens, collectors, sampler, ring and hub, wired once.

Routers reach this through ``request.app.state.agent``; nothing here knows about
HTTP. Later parts (containers, history, watchdog) plug in as sampler listeners or
a ContainerSource, not by reaching into each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from agent import __version__, statefiles, testhooks
from agent.auth import FailedAuthLimiter, TokenStore
from agent.collectors.gpu import GpuCollector
from agent.collectors.host import HostCollector, host_info
from agent.collectors.memory import read_memory, reserve_bytes
from agent.collectors.noise import NoiseModel
from agent.collectors.nvml import load_nvml
from agent.hub import Hub
from agent.notify import Notifier
from agent.protocol import CLOSE_UNAUTHORIZED, PROTOCOL_VERSION
from agent.ring import Ring
from agent.sampler import Sampler
from agent.settings import AgentSettings

log = logging.getLogger("sparkdeck.agent")

REVALIDATE_S = 0.5  # how often open streams re-check their token (revocation closes them)
RING_MAX_FRAMES = 3000  # ~4 MB of compressed frames; backfill beyond it comes from the history store


def _container_service(settings: AgentSettings, hub: Hub, proc_root: str, sys_root: str) -> Any:
    if not settings.containers:
        return None
    from agent.containers.service import ContainerService

    return ContainerService(
        state_dir=settings.state_dir,
        broadcast=hub.broadcast,
        docker_host=settings.docker_host,
        interval_s=settings.interval_s,
        models_file=settings.models_file,
        secrets_file=settings.secrets_file,
        models_home=settings.models_home,
        proc_root=proc_root,
        sys_root=sys_root,
        audit_max_bytes=settings.audit_max_bytes,
        models_bind_allowed=settings.models_bind_allowed,
    )


def _memory_guard(settings: AgentSettings, hub: Hub, containers: Any, proc_root: str) -> Any:
    from agent.containers.audit import AuditLog
    from agent.guard.service import MemoryGuard

    audit = containers.audit if containers is not None else AuditLog(settings.state_dir / "audit.log", max_bytes=settings.audit_max_bytes)
    reserve = int(settings.memory.reserve_gib * 1024**3)
    return MemoryGuard(settings.memory_guard, reserve, broadcast=hub.broadcast, containers=containers, audit=audit, proc_root=proc_root)


def _alert_engine(settings: AgentSettings, hub: Hub, containers: Any, store: Any, hostname: str) -> Any:
    from agent.alerts.delivery import Delivery
    from agent.alerts.engine import AlertEngine
    from agent.containers.catalog import Secrets

    secrets = Secrets(settings.secrets_file or settings.state_dir / "secrets.env")
    delivery = Delivery(settings.notify, secrets.get, settings.state_dir) if (settings.notify.urls or settings.notify.routes) else None
    return AlertEngine(settings, broadcast=hub.broadcast, hostname=hostname, containers=containers, store=store, delivery=delivery, secrets=secrets)


class Agent:
    def __init__(self, settings: AgentSettings, *, nvml: Any = None, proc_root: str = "/proc", sys_root: str | None = None):
        self.settings = settings
        sys_root = sys_root or str(settings.sysfs_root)  # the setting, unless a test passes its own
        self.version = __version__
        self.simulated = bool(settings.simulate)
        self.tokens = TokenStore(settings.tokens_file)
        self.auth_limiter = FailedAuthLimiter(limit=settings.auth_fail_limit)
        self.host_info = host_info(proc_root)
        self.hub = Hub()
        self.ring = Ring(min(RING_MAX_FRAMES, math.ceil(settings.buffer_s / settings.interval_s)))
        self.container_service = _container_service(settings, self.hub, proc_root, sys_root)
        self.gpu = GpuCollector(nvml if nvml is not None else load_nvml(settings.simulate), simulated=self.simulated, proc_root=proc_root)
        self.sampler = Sampler(
            interval_s=settings.interval_s,
            gpu=self.gpu,
            host=HostCollector(proc_root=proc_root, sys_root=sys_root, reserve_bytes=reserve_bytes(settings.memory.reserve_gib)),
            noise=NoiseModel(settings.noise.to_config()),
            ring=self.ring,
            hub=self.hub,
            simulated=self.simulated,
            gpu_timeout_s=settings.gpu_timeout_s,
            containers=self.container_service.tracker if self.container_service else None,
        )
        if self.container_service:  # the launch fit check reads memory afresh, not the last sample
            reserve = reserve_bytes(settings.memory.reserve_gib)
            self.container_service.launcher.memory_source = lambda: (read_memory(proc_root, reserve), self.sampler.unified)
        self._tasks: list[asyncio.Task] = []
        self.notifier = Notifier()
        self.sampler.heartbeats.append(self.notifier.watchdog)
        self.history = None
        if settings.history:
            from agent.history.service import HistoryService

            self.history = HistoryService(settings)
            self.sampler.before_publish.append(self.history.before_publish)
        from agent.history.events import ThrottleEvents

        self.throttle_events = ThrottleEvents(self.history.store if self.history else None)
        self.sampler.listeners.append(self.throttle_events.note_frame)
        self.guard = _memory_guard(settings, self.hub, self.container_service, proc_root)
        self.sampler.listeners.append(self.guard.note_frame)
        from agent.incidents.service import IncidentService

        self.incidents = IncidentService(settings, self.history.store if self.history else None)
        from agent.processes.service import ProcessService

        self.processes = ProcessService(containers=self.container_service, proc_root=proc_root)
        self.sampler.listeners.append(self.processes.note_frame)
        self.alerts = _alert_engine(settings, self.hub, self.container_service, self.history.store if self.history else None, self.host_info["hostname"])
        self.sampler.listeners.append(self.alerts.note_frame)
        self.hub.taps.append(self.alerts.tap)
        self.alerts.incidents_source = lambda: self.incidents.log.items

    async def start(self) -> None:
        statefiles.ensure_dir(self.settings.state_dir)
        testhooks.install(asyncio.get_running_loop())
        if self.container_service:
            await self.container_service.start()  # waits briefly for the engine so the first frame is accurate
        if self.history:
            await self.history.restore(self.sampler, self.ring)
            await self.throttle_events.restore()
        incident = await self.incidents.start()  # reads the last run's frames: before this run stores any
        await self.alerts.start()
        self.alerts.incident(incident)
        await self.sampler.tick()  # the first snapshot exists before the first request
        self._tasks = [
            asyncio.create_task(self.sampler.run(tick_now=False), name="sampler"),
            asyncio.create_task(self._revalidate_streams(), name="revalidate"),
        ]
        if self.history:
            self._tasks.append(asyncio.create_task(self.history.prune_loop(), name="history-prune"))
        # the first tick above already told the guard whether memory is unified (its default)
        self._tasks.append(asyncio.create_task(self.guard.run(), name="memory-guard"))

    async def stop(self) -> None:
        self.notifier.stopping()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.alerts.stop()
        if self.container_service:
            await self.container_service.stop()
        self.gpu.close()
        if self.history:
            self.history.close()
        self.incidents.stopped_cleanly()  # last: a stop that hangs or dies before here is not clean

    async def _revalidate_streams(self) -> None:
        while True:
            await asyncio.sleep(REVALIDATE_S)
            valid = {(t.name, t.created) for t in self.tokens.list()}
            n = self.hub.close_where(lambda c: (c.token_name, c.token_created) not in valid, CLOSE_UNAUTHORIZED, "token revoked")  # noqa: B023 - called before close_where returns
            if n:
                log.info("closed %d stream(s) whose token was revoked", n)

    async def oldest_seq(self) -> int | None:
        """The oldest seq a subscribe can still replay (history store, else the ring)."""
        if self.history:
            stored = await self.history.store.min_seq()
            if stored:
                return min(stored, self.ring.oldest_seq or stored)
        return self.ring.oldest_seq

    def info(self) -> dict[str, Any]:
        return {
            "agent_version": self.version,
            "protocol_version": PROTOCOL_VERSION,
            "host": self.host_info,
            "interval_s": self.settings.interval_s,
            "simulated": self.simulated,
            "gpu_status": self.sampler.gpu_status,
            "buffered_snapshots": len(self.ring),
            "oldest_seq": self.ring.oldest_seq,
            "latest_seq": self.ring.latest_seq,
            "stream_clients": len(self.hub.clients),
            "stream_frames_dropped": sum(c.dropped for c in self.hub.clients),
            "process": process_stats(),
            "memory_guard": self.guard.info(),
            "alerts": self.alerts.info(),
        }


def process_stats() -> dict[str, int]:
    """The agent's own footprint, for soak tests and for noticing a leak in the field."""
    import os
    import threading

    rss = 0
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = -1
    return {"rss_bytes": rss, "fds": fds, "tasks": len(asyncio.all_tasks()), "threads": threading.active_count()}
