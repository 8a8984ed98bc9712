"""GPU compute processes: NVML's list from the last sample, enriched from /proc, and signals to them.

The list is the one the last snapshot carried (the sampler already asked NVML; a request asks it
nothing), so a pid is signalled only if NVML listed it as a GPU process. The start time of each
listed pid is noted when it first appears; right before a signal the agent opens a pidfd, reads
the start time again and sends through that pidfd: a pid that was reused in the meantime is
never signalled, and between the check and the send the pidfd pins the very process checked.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from agent.containers.gpu_map import container_of_pid
from agent.processes import procinfo

SIGNALS = {"TERM": signal.SIGTERM, "KILL": signal.SIGKILL, "INT": signal.SIGINT}
CPU_WINDOW_S = 0.25  # the shortest span a CPU % is measured over (a first look waits this long)


class NotGpuProcess(Exception):
    pass


class PidChanged(Exception):
    """The caller named the start time of the process it meant, and the pid now has another."""


class NotPermitted(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ProcessService:
    def __init__(self, *, containers: Any = None, proc_root: str = "/proc", clock: Callable[[], float] = time.monotonic):
        self.containers = containers  # agent.containers.service.ContainerService or None
        self.proc_root = proc_root
        self.clock = clock
        self._gpus: list[dict[str, Any]] = []
        self._gpu_status: dict[str, Any] = {}
        self._seen: dict[int, int | None] = {}  # pid -> start ticks when NVML first listed it
        # (pid, start ticks) -> (cpu ticks, monotonic time, last CPU %); only for listed processes
        self._cpu: dict[tuple[int, int], tuple[int, float, float | None]] = {}

    # -- sampler listener ---------------------------------------------------------
    def note_frame(self, frame: dict[str, Any], _text: str = "") -> None:
        self._gpus = frame.get("gpus") or []
        self._gpu_status = frame.get("gpu_status") or {}
        pids = {int(p["pid"]) for g in self._gpus for p in (g.get("processes") or [])}
        for pid in pids:
            if self._seen.get(pid) is None:  # new, or unreadable last time: a later sample may read it
                info = procinfo.read_stat(pid, self.proc_root)
                self._seen[pid] = info.start_ticks if info else None
        for pid in self._seen.keys() - pids:
            del self._seen[pid]

    # -- the list -----------------------------------------------------------------
    def _listed(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(g, p) for g in self._gpus for p in (g.get("processes") or [])]

    def _alive(self, pid: int) -> procinfo.ProcInfo | None:
        """The process NVML listed under ``pid``, or None when it exited or the pid was reused."""
        info = procinfo.read_stat(pid, self.proc_root)
        # no start time noted while NVML listed it: nothing proves this is that process
        if info is None or self._seen.get(pid) != info.start_ticks:
            return None
        return info

    def _container(self, pid: int) -> dict[str, str] | None:
        cid = container_of_pid(pid, self.proc_root)
        if cid is None:
            return None
        entries = getattr(getattr(self.containers, "tracker", None), "entries", {}) or {}
        name = (entries.get(cid) or {}).get("name")
        return {"id": cid[:12], "full_id": cid, "name": name or cid[:12]}

    async def listing(self) -> dict[str, Any]:
        # a few /proc files and a passwd lookup per process: ~0.1 ms each, in a thread so a long
        # list never delays the stream (bench/processes_list.py)
        rows, infos = await asyncio.to_thread(self._rows)
        cpu = await self._cpu_percent(infos)
        for row in rows:
            row["cpu_percent"] = cpu.get(row["pid"])
        return {"processes": rows, "gpu_status": self._gpu_status.get("state"), "ts": round(time.time(), 3)}

    def _rows(self) -> tuple[list[dict[str, Any]], dict[int, procinfo.ProcInfo]]:
        btime = procinfo.boot_time(self.proc_root)
        rows: list[dict[str, Any]] = []
        infos: dict[int, procinfo.ProcInfo] = {}
        for gpu, proc in self._listed():
            pid = int(proc["pid"])
            info = infos.get(pid) or self._alive(pid)
            if info is None:
                continue  # NVML lags an exit by a sample; a gone process is not shown
            infos[pid] = info
            uid, user, ns_init = procinfo.owner(pid, self.proc_root)
            rows.append(
                {
                    "gpu": int(gpu.get("index", 0)),
                    "gpu_uuid": gpu.get("uuid"),
                    "pid": pid,
                    "user": user,
                    "uid": uid,
                    "name": proc.get("name"),
                    "command": procinfo.cmdline(pid, self.proc_root),
                    "container": self._container(pid),
                    "container_main": ns_init,
                    "used_gpu_memory_bytes": proc.get("used_memory_bytes"),
                    "cpu_percent": None,
                    "rss_bytes": info.rss_bytes,
                    "start_time": procinfo.start_time(info, btime),
                }
            )
        return rows, infos

    async def _cpu_percent(self, infos: dict[int, procinfo.ProcInfo]) -> dict[int, float | None]:
        """CPU % of one core since the previous listing; a process seen for the first time is
        measured over CPU_WINDOW_S (one wait for all of them)."""
        now = self.clock()
        keys = {(pid, i.start_ticks): i for pid, i in infos.items()}
        self._cpu = {k: v for k, v in self._cpu.items() if k in keys}  # bounded by the listed processes
        new = [k for k in keys if k not in self._cpu]
        if new:
            for k in new:
                self._cpu[k] = (keys[k].cpu_ticks, now, None)
            await asyncio.sleep(CPU_WINDOW_S)
            now = self.clock()
            for k in new:
                fresh = procinfo.read_stat(k[0], self.proc_root)
                if fresh is not None and fresh.start_ticks == k[1]:
                    keys[k] = fresh
        out: dict[int, float | None] = {}
        waited = set(new)  # measured over the wait above, even when the loop woke it a hair before CPU_WINDOW_S
        for k, info in keys.items():
            ticks, then, last = self._cpu[k]
            if now - then < CPU_WINDOW_S and k not in waited:
                out[k[0]] = last
                continue
            pct = round((info.cpu_ticks - ticks) / procinfo.CLK_TCK / (now - then) * 100, 1)
            self._cpu[k] = (info.cpu_ticks, now, pct)
            out[k[0]] = pct
        return out

    # -- signals ------------------------------------------------------------------
    def describe(self, pid: int) -> dict[str, Any]:
        """What the audit log and error messages say about a listed pid."""
        uid, user, ns_init = procinfo.owner(pid, self.proc_root)
        return {"user": user, "uid": uid, "container": self._container(pid), "container_main": ns_init, "command": procinfo.cmdline(pid, self.proc_root)}

    def check_listed(self, pid: int) -> None:
        if not any(int(p["pid"]) == pid for _, p in self._listed()):
            raise NotGpuProcess(f"pid {pid} is not in the GPU process list (GPU telemetry: {self._gpu_status.get('state', 'not sampled')})")

    async def send(self, pid: int, name: str, *, wait_s: float, start_time: float | None = None) -> dict[str, Any]:
        """Signal a listed GPU process and wait up to ``wait_s`` for it to exit."""
        self.check_listed(pid)
        base = {"pid": pid, "signal": name, "waited_s": 0.0}
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return {**base, "sent": False, "result": "gone", "detail": f"pid {pid} had already exited; nothing was sent"}
        try:
            info = self._alive(pid)  # read after the pidfd is open: a match means the pidfd holds that process
            if info is None:
                return {
                    **base,
                    "sent": False,
                    "result": "gone",
                    "detail": f"pid {pid} had already exited (or the number now belongs to another process); nothing was sent",
                }
            if start_time is not None and procinfo.start_time(info, procinfo.boot_time(self.proc_root)) != round(start_time, 2):
                raise PidChanged(f"pid {pid} started at another time than the process you meant; nothing was sent (refresh the list)")
            try:
                signal.pidfd_send_signal(fd, SIGNALS[name])
            except ProcessLookupError:
                return {**base, "sent": False, "result": "gone", "detail": f"pid {pid} exited before the signal; nothing was sent"}
            except PermissionError:
                raise NotPermitted(self._not_permitted(pid)) from None
            t0 = time.monotonic()
            exited = await _wait_exit(fd, wait_s)
            waited = round(time.monotonic() - t0, 2)
        finally:
            os.close(fd)
        if exited:
            return {**base, "sent": True, "result": "exited", "waited_s": waited, "detail": f"pid {pid} exited after SIG{name}"}
        return {**base, "sent": True, "result": "still_running", "waited_s": waited, "detail": self._still_running(pid, name, wait_s)}

    def _not_permitted(self, pid: int) -> str:
        d = self.describe(pid)
        me = procinfo.owner(os.getpid(), "/proc")[1] or str(os.getuid())
        fix = (
            f"stop its container instead (POST /api/v1/containers/{d['container']['name']}/stop, or x in the containers screen)"
            if d["container"]
            else f"signal it as {d['user'] or 'its owner'} or root (e.g. sudo kill {pid})"
        )
        return f"the agent runs as {me} and may not signal pid {pid} (owned by {d['user'] or '?'}); {fix}"

    def _still_running(self, pid: int, name: str, wait_s: float) -> str:
        d = self.describe(pid)
        text = f"pid {pid} is still running {wait_s:g} s after SIG{name}"
        if name != "KILL" and d["container_main"]:
            return text + (
                f": it is the main process of container {d['container']['name'] if d['container'] else '?'}, and a container's"
                " main process ignores SIGTERM and SIGINT unless it handles them; send KILL or stop the container"
            )
        if name != "KILL":
            return text + ": it handles or ignores the signal; send KILL to end it"
        return text + ": it may be stuck in the kernel (state D) or a GPU driver call"


async def _wait_exit(fd: int, wait_s: float) -> bool:
    """True when the process behind the pidfd exits within ``wait_s`` (a pidfd polls readable then)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()

    def exited() -> None:
        if not done.done():
            done.set_result(True)

    loop.add_reader(fd, exited)
    try:
        await asyncio.wait_for(done, wait_s)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
