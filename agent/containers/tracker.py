"""The live container list: engine events plus a periodic full listing, stats, GPU memory.

The sampler reads ``snapshot(gpus)`` on every tick from the event loop, so it only
assembles cached state; the tasks started by ``start()`` keep that state current:

* events: each container event (create/start/die/stop/destroy/health...) re-reads
  that one container, so a change lands in the next frame;
* reconcile: a full listing every RECONCILE_S catches anything an event missed
  and refreshes the engine's human ``status`` text ("Up 5 minutes");
* stats: cgroup/procfs counters for running containers, read in a worker thread.

When the engine goes away the list empties, ``containers_status`` says why and
how to fix it, and the watcher reconnects with backoff; GPU and host telemetry
never wait on any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from datetime import datetime
from typing import Any

from agent.containers.catalog import MODEL_LABEL
from agent.containers.engine import Engine, EngineError, EngineUnavailable
from agent.containers.gpu_map import gpu_memory_by_container
from agent.containers.serving import target_for
from agent.containers.serving_poll import ServingPoller
from agent.containers.stats import StatsReader

log = logging.getLogger("sparkdeck.containers")

RECONCILE_S = 5.0
STATS_MIN_INTERVAL_S = 1.0  # like docker stats: faster sampling would cost CPU and only add noise to the rates
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 5.0
MAX_STOP_REQUESTS = 256
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
# descriptive fields kept out of the per-tick frame (they are in GET /api/v1/containers):
# image labels alone run to a kilobyte or two per NGC container
DETAIL_ONLY = ("full_id", "labels", "created")
ENDED = ("exited", "dead")  # states with an exit code and an end time worth showing
_EVENTS = {"create", "start", "restart", "die", "stop", "kill", "destroy", "pause", "unpause", "rename", "update", "oom", "health_status"}
_STAT_FIELDS = ("cpu_percent", "memory_bytes", "memory_limit_bytes", "net_rx_bytes_s", "net_tx_bytes_s")


def _ports(raw: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    seen: dict[tuple, dict[str, Any]] = {}
    for p in raw or []:
        if p.get("PublicPort"):
            key = (p["PublicPort"], p.get("PrivatePort"), p.get("Type"))
            seen.setdefault(
                key, {"host_ip": p.get("IP") or None, "host_port": p["PublicPort"], "container_port": p.get("PrivatePort"), "protocol": p.get("Type", "tcp")}
            )
    return sorted(seen.values(), key=lambda p: (p["host_port"], p["protocol"]))


def entry_from_listing(item: dict[str, Any]) -> dict[str, Any]:
    """A snapshot entry (without live figures) from one item of GET /containers/json."""
    status = item.get("Status") or ""
    health = _HEALTH.search(status)
    labels = item.get("Labels") or {}
    names = item.get("Names") or []
    return {
        "id": item["Id"][:12],  # the short id `docker ps` shows; every route takes it
        "full_id": item["Id"],
        "name": names[0].lstrip("/") if names else item["Id"][:12],
        "image": item.get("Image"),
        "state": item.get("State"),
        "status": status,
        "created": item.get("Created"),
        "ports": _ports(item.get("Ports")),
        "labels": labels,
        "health": health.group(1).replace("health: ", "") if health else None,
        "model": labels.get(MODEL_LABEL),
    }


def parse_engine_time(text: Any) -> float | None:
    """Unix time from the engine's RFC 3339 (nanoseconds, 'Z'); None for its zero time or junk."""
    if not isinstance(text, str) or text.startswith("0001-"):
        return None
    head, dot, frac = text.rstrip("Z").partition(".")
    zone = ""
    for sign in "+-":
        if sign in frac:
            frac, _, rest = frac.partition(sign)
            zone = sign + rest
    try:
        base = datetime.fromisoformat(head + (zone or "+00:00"))
    except ValueError:
        return None
    return base.timestamp() + (float("0." + frac[:9]) if dot and frac.isdigit() else 0.0)


class ContainerTracker:
    """A ContainerSource for the sampler (see agent.sampler)."""

    def __init__(self, engine: Engine, *, interval_s: float = 1.0, proc_root: str = "/proc", sys_root: str = "/sys"):
        self.engine = engine
        self.interval_s = interval_s
        self.proc_root = proc_root
        self.entries: dict[str, dict[str, Any]] = {}
        self.pids: dict[str, int] = {}
        self.figures: dict[str, dict[str, Any]] = {}
        self.started: dict[str, float] = {}  # full id -> State.StartedAt (Unix) of running ones, for the memory guard
        self.status: dict[str, Any] = {"state": "unavailable", "message": "connecting to the Docker engine", "fix": None}
        self.connected = asyncio.Event()
        self._stats = StatsReader(proc_root, sys_root)
        self.serving = ServingPoller()  # model-server metrics, read in its own thread
        self.host_network: set[str] = set()  # --network host: a server's port is the host's own
        # full id -> when a stop was asked for (container or model stop route, the memory guard): the
        # alert engine reports that end as "stopped on request", not as an exit to notify
        self.stop_requests: dict[str, float] = {}
        self._last_gpus: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task] = []

    # -- ContainerSource ------------------------------------------------------------
    def snapshot(self, gpus: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        self._last_gpus = gpus
        # a reconnect's listing fills entries one container at a time (an inspect each) before the status
        # turns "ok": until then a frame would list containers under "unavailable". The fit check and the
        # guard (rows()) still count what is known meanwhile.
        if self.status["state"] != "ok":
            return [], self.status
        return self._rows(gpus, detail=False), self.status

    def _rows(self, gpus: list[dict[str, Any]], *, detail: bool) -> list[dict[str, Any]]:
        if not self.entries:
            return []
        gpu_mem, complete = gpu_memory_by_container(gpus, self.proc_root) if gpus else ({}, False)
        out = [self._row(cid, entry, gpu_mem, complete, detail) for cid, entry in self.entries.items()]
        out.sort(key=lambda r: r["name"])
        return out

    def _row(self, cid: str, entry: dict[str, Any], gpu_mem: dict[str, int | None], complete: bool, detail: bool) -> dict[str, Any]:
        running = entry["state"] == "running"
        figs = (self.figures.get(cid) if running else None) or {}
        row = {k: v for k, v in entry.items() if detail or k not in DETAIL_ONLY}
        row.update({k: figs.get(k) for k in _STAT_FIELDS})
        row["gpu_memory_bytes"] = gpu_mem.get(cid, 0) if complete and running else gpu_mem.get(cid)
        row["serving"] = self.serving.result(cid) if running else None
        return row

    # -- used by the API -------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """The list as in the next frame plus full id, labels and creation time (GPU memory from the last sampled GPUs)."""
        return self._rows(self._last_gpus, detail=True)

    def detail(self, cid: str) -> dict[str, Any] | None:
        """One container as rows() has it; None when it is not tracked."""
        entry = self.entries.get(cid)
        if entry is None:
            return None
        gpu_mem, complete = gpu_memory_by_container(self._last_gpus, self.proc_root) if self._last_gpus else ({}, False)
        return self._row(cid, entry, gpu_mem, complete, True)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self, wait_s: float = 2.0) -> None:
        self._tasks = [asyncio.create_task(self._watch_forever(), name="containers-watch"), asyncio.create_task(self._stats_loop(), name="containers-stats")]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.connected.wait(), wait_s)  # so the first frame is accurate

    def note_stop_request(self, full_id: str) -> None:
        """Called before an intended stop; bounded (the oldest goes first) so it cannot grow."""
        self.stop_requests.pop(full_id, None)
        self.stop_requests[full_id] = time.time()
        while len(self.stop_requests) > MAX_STOP_REQUESTS:
            self.stop_requests.pop(next(iter(self.stop_requests)))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        self.serving.close()
        await asyncio.to_thread(self._stats.close)
        await self.engine.close()

    async def _watch_forever(self) -> None:
        backoff = BACKOFF_MIN_S
        while True:
            try:
                await self.engine.ping()
                since = int(time.time()) - 1  # replay events from while we listed: refreshes are idempotent
                await self.reconcile()
                if self.status["state"] != "ok":
                    log.info("Docker engine connected (%s)", self.engine.url)
                self.status = {"state": "ok", "message": f"Docker engine at {self.engine.url}", "fix": None}
                self.connected.set()
                backoff = BACKOFF_MIN_S
                await self._follow(since)
                raise EngineUnavailable("the Docker engine closed its event stream", "check that dockerd is running")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = exc if isinstance(exc, EngineError) else EngineUnavailable(f"Docker engine error: {exc}", None)
                if self.status["state"] == "ok":
                    log.warning("Docker engine lost: %s; reconnecting", err.message)
                self.status = {"state": "unavailable", "message": err.message, "fix": getattr(err, "fix", None)}
                self.entries, self.pids, self.figures, self.started = {}, {}, {}, {}
                self.connected.set()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _follow(self, since: int) -> None:
        events = asyncio.create_task(self._events(since))
        periodic = asyncio.create_task(self._reconcile_loop())
        try:
            done, _ = await asyncio.wait({events, periodic}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # re-raise the engine error that ended it
        finally:
            for t in (events, periodic):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def _events(self, since: int) -> None:
        # health checks alone make exec_* events every few seconds per container: filter them at the engine
        params = {"since": str(since), "filters": json.dumps({"type": ["container"], "event": sorted(_EVENTS)})}
        async for ev in self.engine.stream_lines("GET", "events", params=params):
            action = str(ev.get("Action") or ev.get("status") or "").split(":")[0]
            cid = ev.get("id") or (ev.get("Actor") or {}).get("ID")
            if action not in _EVENTS or not cid:
                continue
            if action == "destroy":
                self.forget(cid)
            else:
                await self.refresh(cid, new_pid=action in ("start", "restart"))

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(RECONCILE_S)
            await self.reconcile()

    async def _stats_loop(self) -> None:
        while True:
            running = {cid: pid for cid, pid in self.pids.items() if self.entries.get(cid, {}).get("state") == "running"}
            self._update_serving_targets()
            if running:
                try:
                    self.figures = await asyncio.to_thread(self._stats.read_all, running)
                except Exception:
                    log.exception("container stats failed")
            await asyncio.sleep(max(self.interval_s, STATS_MIN_INTERVAL_S))

    def _update_serving_targets(self) -> None:
        targets = {}
        for cid, entry in self.entries.items():
            if entry.get("state") == "running":
                t = target_for(entry, host_network=cid in self.host_network)
                if t is not None:
                    targets[cid] = t
        self.serving.set_targets(targets)

    # -- state updates ----------------------------------------------------------------------
    async def reconcile(self) -> None:
        items = await self.engine.call("GET", "containers/json", params={"all": "1"})
        fresh = {item["Id"]: entry_from_listing(item) for item in items}
        self.host_network = {item["Id"] for item in items if (item.get("HostConfig") or {}).get("NetworkMode") == "host"}
        for cid, entry in fresh.items():
            await self._set(cid, entry)
        for cid in [c for c in self.entries if c not in fresh]:
            self.forget(cid)

    async def refresh(self, cid: str, *, new_pid: bool = False) -> dict[str, Any] | None:
        """Re-read one container (after an event or an action); None once it is gone.
        new_pid: it (re)started, so its pid changed even if it was running before."""
        items = await self.engine.call("GET", "containers/json", params={"all": "1", "filters": json.dumps({"id": [cid]})})
        item = next((i for i in items if i["Id"] == cid or i["Id"].startswith(cid)), None)
        if item is None:
            self.forget(cid)
            return None
        entry = entry_from_listing(item)
        if (item.get("HostConfig") or {}).get("NetworkMode") == "host":
            self.host_network.add(item["Id"])
        if new_pid:
            self.pids.pop(item["Id"], None)
        await self._set(item["Id"], entry)
        return entry

    async def _set(self, cid: str, entry: dict[str, Any]) -> None:
        old = self.entries.get(cid)
        self.entries[cid] = entry
        if entry["state"] in ENDED:
            await self._note_end(cid, entry, old)
        if entry["state"] != "running":
            self.pids.pop(cid, None)
            self.started.pop(cid, None)
        elif cid not in self.pids or old is None or old["state"] != "running":
            try:  # the listing has no pid; the stats and GPU mapping need it
                info = await self.engine.call("GET", f"containers/{cid}/json")
                pid = int((info.get("State") or {}).get("Pid") or 0)
                if pid > 0:
                    self.pids[cid] = pid
                started = parse_engine_time((info.get("State") or {}).get("StartedAt"))
                if started is not None:
                    self.started[cid] = started
            except EngineError as exc:
                if exc.status != 404:
                    raise

    async def _note_end(self, cid: str, entry: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Exit code and end time of an exited container (the listing has neither): one inspect per end, then kept."""
        if old is not None and old["state"] == entry["state"] and "finished_at" in old:
            entry["exit_code"], entry["finished_at"] = old.get("exit_code"), old["finished_at"]
            return
        try:
            state = (await self.engine.call("GET", f"containers/{cid}/json")).get("State") or {}
        except EngineError as exc:
            if exc.status != 404:
                raise
            return
        code = state.get("ExitCode")
        entry["exit_code"] = code if isinstance(code, int) else None
        entry["finished_at"] = parse_engine_time(state.get("FinishedAt"))

    def forget(self, cid: str) -> None:
        self.entries.pop(cid, None)
        self.pids.pop(cid, None)
        self.figures.pop(cid, None)
        self.started.pop(cid, None)
        self.host_network.discard(cid)
