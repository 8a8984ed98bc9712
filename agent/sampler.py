"""The one sampling loop: collect, assemble a snapshot, encode it once, fan it out.

Collectors block (NVML, /proc, /sys), so each runs in a daemon thread and is
time-boxed: a hung NVML call marks GPU telemetry ``stalled`` while host telemetry
keeps flowing, and no second call is started until the hung one returns. Ticks
are scheduled on a fixed grid; an overrun skips the missed slots instead of
bursting to catch up.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar, cast

from agent.collectors.gpu import GpuCollector
from agent.collectors.host import HostCollector
from agent.collectors.memory import gpu_process_bytes, is_unified
from agent.collectors.noise import NoiseModel
from agent.hub import Hub
from agent.protocol import SnapshotFrame, encode, frame
from agent.ring import Ring

log = logging.getLogger("sparkdeck.sampler")


class ContainerSource(Protocol):
    """What the sampler needs from the container tracker (agent/containers/tracker.py): a non-blocking read."""

    def snapshot(self, gpus: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]: ...


HEARTBEAT_S = 5.0

NO_CONTAINERS: tuple[list[dict[str, Any]], dict[str, Any]] = ([], {"state": "disabled", "message": "container monitoring is not enabled", "fix": None})


class Stalled(Exception):
    def __init__(self, seconds: float):
        super().__init__(f"no answer for {seconds:.0f}s")
        self.seconds = seconds


T = TypeVar("T")

GpuReading = tuple[list[dict[str, Any]], dict[str, Any]]  # (gpus, status), as GpuCollector.collect returns them


class TimeBoxed(Generic[T]):
    """Run a blocking function in its own long-lived daemon thread, at most one call at a time.

    One persistent thread per collector (not a thread per call): no thread churn, and a
    call that hangs simply keeps its thread busy while later calls report Stalled.
    """

    def __init__(self, fn: Callable[[], T], timeout_s: float, name: str):
        self.fn = fn
        self.timeout_s = timeout_s
        self.name = name
        self._pending: asyncio.Future | None = None
        self._started = 0.0
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _worker(self) -> None:
        while True:
            loop, fut = self._jobs.get()
            try:
                result: Any = self.fn()
                err: BaseException | None = None
            except BaseException as exc:  # delivered to the awaiting side
                result, err = None, exc
            if not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(_settle, fut, result, err)
                except RuntimeError:  # the loop closed meanwhile
                    pass

    async def __call__(self) -> T:
        loop = asyncio.get_running_loop()
        if self._pending is not None and not self._pending.done():
            raise Stalled(time.monotonic() - self._started)
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, name=f"sparkdeck-{self.name}", daemon=True)
            self._thread.start()
        fut: asyncio.Future = loop.create_future()
        # a call that failed after its caller gave up is still "retrieved": no asyncio warning
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._pending, self._started = fut, time.monotonic()
        self._jobs.put((loop, fut))
        try:
            result: T = await asyncio.wait_for(asyncio.shield(fut), self.timeout_s)
            return result
        except TimeoutError:
            raise Stalled(time.monotonic() - self._started) from None


def _settle(fut: asyncio.Future, result: Any, err: BaseException | None) -> None:
    if fut.done():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(result)


class Sampler:
    def __init__(
        self,
        *,
        interval_s: float,
        gpu: GpuCollector,
        host: HostCollector,
        noise: NoiseModel,
        ring: Ring,
        hub: Hub,
        simulated: bool = False,
        gpu_timeout_s: float = 5.0,
        containers: ContainerSource | None = None,
    ):
        self.interval_s = interval_s
        self.gpu = gpu
        self.noise = noise
        self.ring = ring
        self.hub = hub
        self.simulated = simulated
        self.containers = containers
        self.seq = 0  # the history service continues it after a restart
        self._gpu_call = TimeBoxed(gpu.collect, gpu_timeout_s, "nvml")
        self._host_call = TimeBoxed(host.collect, max(gpu_timeout_s, 5.0), "host")
        self._last_host: dict[str, Any] | None = None
        self.listeners: list[Callable[[dict[str, Any], str], Awaitable[None] | None]] = []
        # awaited before a frame is published (seq file, history); each must bound its own wait
        self.before_publish: list[Callable[[dict[str, Any], str, bytes], Awaitable[Any]]] = []
        # called after every tick and at least every HEARTBEAT_S while sleeping (systemd watchdog)
        self.heartbeats: list[Callable[[], None]] = []
        self.last_tick_monotonic = 0.0
        self.unified = False  # GPU memory is system RAM (the Spark): the launch fit check applies
        self.gpu_status: dict[str, Any] = {"state": "unavailable", "message": "not sampled yet", "fix": None, "simulated": simulated}

    async def sample_once(self) -> SnapshotFrame:
        gpu_res: GpuReading | BaseException
        host_res: dict[str, Any] | BaseException
        gpu_res, host_res = await asyncio.gather(self._gpu_call(), self._host_call(), return_exceptions=True)
        if isinstance(gpu_res, Stalled):
            gpus: list[dict[str, Any]] = []
            gpu_status = {
                "state": "stalled",
                "message": f"NVML has not answered for {gpu_res.seconds:.0f}s; GPU telemetry paused",
                "fix": "check `nvidia-smi` and `dmesg` for a hung driver",
                "simulated": self.simulated,
            }
        elif isinstance(gpu_res, BaseException):
            log.error("GPU collector failed: %r", gpu_res)
            gpus, gpu_status = [], {"state": "unavailable", "message": f"GPU collector error: {gpu_res}", "fix": None, "simulated": self.simulated}
        else:
            gpus, gpu_status = gpu_res
        if isinstance(host_res, BaseException):
            if not isinstance(host_res, Stalled):
                log.error("host collector failed: %r", host_res)
            host = self._last_host  # a hung mount must not stop the stream; keep the last reading
        else:
            host = self._last_host = host_res
        if host is None:
            raise RuntimeError("host telemetry unavailable")
        if gpus or gpu_status.get("state") != "stalled":  # a stalled NVML says nothing new about unified memory
            self.unified = is_unified(gpus)
        host["memory"]["gpu_process_bytes"] = gpu_process_bytes(gpus)
        containers, containers_status = self.containers.snapshot(gpus) if self.containers else NO_CONTAINERS
        self.seq += 1
        self.gpu_status = gpu_status
        return frame(
            "snapshot",
            seq=self.seq,
            ts=round(time.time(), 3),
            simulated=self.simulated,
            host=host,
            gpus=gpus,
            gpu_status=gpu_status,
            noise=self.noise.compute(gpus, host),
            containers=containers,
            containers_status=containers_status,
        )

    async def tick(self) -> None:
        # hooks and listeners take it as a plain dict: the unit tests feed them hand-made frames
        frame = cast(dict[str, Any], await self.sample_once())
        text = encode(frame)
        blob = Ring.pack(text)
        for hook in self.before_publish:
            try:
                await hook(frame, text, blob)
            except Exception:
                log.exception("before-publish hook failed; publishing anyway")
        self.ring.append(frame["seq"], frame["ts"], text, blob)
        self.hub.publish(frame["seq"], text)
        self.last_tick_monotonic = time.monotonic()
        for listener in self.listeners:
            try:
                res = listener(frame, text)
                if asyncio.iscoroutine(res):
                    await res
            except Exception:
                log.exception("snapshot listener failed")

    async def run(self, *, tick_now: bool = True) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if tick_now:
                try:
                    await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("sample failed; continuing")
            tick_now = True
            next_at += self.interval_s
            now = loop.time()
            if next_at < now:  # overran: skip missed slots
                next_at = now + self.interval_s - ((now - next_at) % self.interval_s)
            while True:
                for beat in self.heartbeats:
                    beat()
                remaining = next_at - loop.time()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, HEARTBEAT_S))
