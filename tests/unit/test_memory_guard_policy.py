"""The memory guard's pure parts: when it trips, which container it picks, what it parses."""

from __future__ import annotations

import os

import pytest

from agent.collectors.memory import models_available
from agent.containers.tracker import parse_engine_time
from agent.guard.policy import Tripwire, choose, eligible
from agent.guard.readers import MemoryReader, PsiTrigger
from agent.procfs import meminfo_field, psi_line

GIB = 1024**3


def test_models_available_is_available_less_reserve() -> None:
    assert models_available(10 * GIB, 8 * GIB) == 2 * GIB
    assert models_available(6 * GIB, 8 * GIB) == -2 * GIB


def test_short_memory_trips_at_once() -> None:
    t = Tripwire(reserve_bytes=8 * GIB, psi_full=20, hold_s=3)
    assert t.update(0.0, 9 * GIB, (0.0, 0)) is None
    assert t.update(0.25, 8 * GIB - 1, (0.0, 0)) == "memory"
    assert t.update(0.5, None, None) is None  # unreadable meminfo never trips it


def test_pressure_must_hold_for_hold_s() -> None:
    t = Tripwire(reserve_bytes=0, psi_full=20, hold_s=3)
    assert t.update(0.0, GIB, (25.0, 0)) is None
    assert t.update(2.9, GIB, (25.0, 0)) is None
    assert t.update(3.0, GIB, (25.0, 0)) == "pressure"
    # a dip below the threshold restarts the clock
    t2 = Tripwire(reserve_bytes=0, psi_full=20, hold_s=3)
    t2.update(0.0, GIB, (25.0, 0))
    t2.update(2.0, GIB, (5.0, 0))
    assert t2.update(4.0, GIB, (25.0, 0)) is None
    assert t2.update(7.0, GIB, (25.0, 0)) == "pressure"


def test_a_psi_trigger_counts_as_pressure_before_avg10_catches_up() -> None:
    t = Tripwire(reserve_bytes=0, psi_full=20, hold_s=1, trigger_window_s=2)
    assert t.update(0.0, GIB, (1.0, 0), triggered=True) is None
    assert t.update(1.0, GIB, (3.0, 0)) == "pressure"  # avg10 still low, the trigger fired 1 s ago
    assert t.update(5.0, GIB, (3.0, 0)) is None  # no trigger within its window any more


def test_after_acting_only_fresh_stall_counts_not_the_lagging_avg10() -> None:
    t = Tripwire(reserve_bytes=0, psi_full=20, hold_s=1)
    t.update(0.0, GIB, (30.0, 1_000_000))
    assert t.update(1.0, GIB, (30.0, 1_300_000)) == "pressure"
    t.acted(1.0, (30.0, 1_300_000))
    # avg10 still reads 28 % (a 10 s average), but no stall accrued since the stop
    assert t.update(2.0, GIB, (28.0, 1_300_000)) is None
    assert t.update(3.5, GIB, (26.0, 1_300_000)) is None
    # stall keeps growing at 50 % after the stop: that is real, and trips again after hold_s
    t2 = Tripwire(reserve_bytes=0, psi_full=20, hold_s=1)
    t2.acted(0.0, (30.0, 0))
    assert t2.update(0.5, GIB, (30.0, 250_000)) is None
    assert t2.update(1.5, GIB, (30.0, 750_000)) == "pressure"


def test_psi_full_zero_turns_pressure_off() -> None:
    t = Tripwire(reserve_bytes=0, psi_full=0, hold_s=0)
    assert t.update(0.0, GIB, (99.0, 0), triggered=True) is None


def _row(
    name: str,
    *,
    model: str | None = None,
    labels: dict | None = None,
    state: str = "running",
    gpu: int | None = None,
    rss: int | None = None,
    created: float = 0,
) -> dict:
    return {
        "id": name[:12],
        "full_id": name,
        "name": name,
        "model": model,
        "labels": {**(labels or {}), **({"sparkdeck.model": model} if model else {})},
        "state": state,
        "gpu_memory_bytes": gpu,
        "memory_bytes": rss,
        "created": created,
    }


ROWS = [
    _row("old-model", model="a", rss=5 * GIB, created=100),
    _row("new-model", model="b", rss=1 * GIB, created=200),
    _row("allowed", labels={"sparkdeck.guard": "allow"}, rss=3 * GIB),
    _row("stranger-huge", rss=50 * GIB, gpu=40 * GIB),
    _row("stopped-model", model="c", state="exited", created=300),
]


def test_stop_newest_model_picks_the_last_started_model() -> None:
    assert choose(ROWS, "stop-newest-model")["name"] == "new-model"
    # start times beat creation times (an old container restarted a minute ago is the newest)
    assert choose(ROWS, "stop-newest-model", started={"old-model": 900.0, "new-model": 300.0})["name"] == "old-model"
    assert choose(ROWS, "stop-newest-model", skip={"new-model"})["name"] == "old-model"
    assert choose(ROWS, "stop-newest-model", skip={"new-model", "old-model"}) is None  # never a non-model


def test_stop_largest_ranks_gpu_memory_then_rss_among_the_eligible() -> None:
    assert choose(ROWS, "stop-largest")["name"] == "old-model"  # stranger-huge is not eligible
    assert choose(ROWS, "stop-largest", skip={"old-model"})["name"] == "allowed"
    assert choose(ROWS, "stop-largest", any_container=True)["name"] == "stranger-huge"
    gpu_first = [_row("big-rss", model="x", rss=9 * GIB, gpu=0), _row("big-gpu", model="y", rss=1 * GIB, gpu=2 * GIB)]
    assert choose(gpu_first, "stop-largest")["name"] == "big-gpu"


def test_unlabelled_containers_are_never_eligible_without_any_container() -> None:
    stranger = _row("stranger", rss=GIB)
    for action in ("stop-newest-model", "stop-largest", "warn"):
        assert not eligible(stranger, action)
    assert eligible(stranger, "stop-largest", any_container=True)
    assert not eligible(stranger, "stop-newest-model", any_container=True)  # that action stops models only


def test_only_label_scopes_every_action() -> None:
    mine = _row("mine", model="m", labels={"sparkdeck.test": "run-1"})
    other = _row("other", model="m", labels={"sparkdeck.test": "run-2"})
    assert eligible(mine, "stop-newest-model", only_label="sparkdeck.test=run-1")
    assert not eligible(other, "stop-newest-model", only_label="sparkdeck.test=run-1")
    assert not eligible(other, "stop-largest", any_container=True, only_label="sparkdeck.test=run-1")
    assert eligible(other, "stop-largest", only_label="sparkdeck.test")  # a bare key matches any value


def test_proc_parsers() -> None:
    text = b"MemTotal:       24730756 kB\nMemFree:        1 kB\nMemAvailable:   23954004 kB\n"
    assert meminfo_field(text, b"MemAvailable") == 23954004 * 1024
    assert meminfo_field(text, b"Shmem") is None
    psi = b"some avg10=1.50 avg60=0.20 avg300=0.00 total=77\nfull avg10=0.25 avg60=0.00 avg300=0.00 total=12345\n"
    assert psi_line(psi, b"full") == (0.25, 12345)
    assert psi_line(psi, b"some") == (1.5, 77)
    assert psi_line(b"", b"full") is None and psi_line(b"full avg10=x total=1", b"full") is None


def test_engine_times() -> None:
    assert parse_engine_time("2026-12-01T20:43:12.5Z") == pytest.approx(1796157792.5)
    assert parse_engine_time("0001-01-01T00:00:00Z") is None
    assert parse_engine_time(None) is None and parse_engine_time("junk") is None


def test_readers_on_this_kernel(tmp_path) -> None:
    """The real /proc: MemAvailable always; PSI and its trigger where the kernel allows (the path is printed)."""
    reader = MemoryReader()
    try:
        assert reader.available_bytes() > 0
        pressure = reader.full_pressure()
        print(f"PSI full on this kernel: {pressure}")
    finally:
        reader.close()
    trigger = PsiTrigger(20)
    try:
        print(f"PSI trigger path: {trigger.path}")
        assert trigger.path.startswith(("armed", "unavailable"))
        assert trigger.drain() in (True, False)
    finally:
        trigger.close()
    # no PSI at all (an old kernel, or PSI off): a clean "unavailable", never an exception
    (tmp_path / "meminfo").write_text("MemAvailable:   1024 kB\n")
    fake = MemoryReader(str(tmp_path))
    assert fake.available_bytes() == 1024 * 1024 and fake.full_pressure() is None
    fake.close()
    missing = PsiTrigger(20, proc_root=str(tmp_path))
    assert not missing.armed and missing.path.startswith("unavailable: cannot open") and missing.fileno() == -1
    assert os.path.exists(tmp_path / "meminfo")


def test_a_plain_file_posing_as_psi_falls_back_cleanly(tmp_path) -> None:
    (tmp_path / "pressure").mkdir()
    (tmp_path / "pressure" / "memory").write_text("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    trigger = PsiTrigger(20, proc_root=str(tmp_path))
    assert not trigger.armed and trigger.path.startswith("unavailable: cannot poll") and not trigger.drain()
    trigger.close()


class PipeTrigger:
    """Stands in for the kernel's PSI trigger: an epoll over a pipe; a byte written is a trigger event."""

    def __init__(self, _psi_full: float, _proc_root: str):
        import select

        self.r, self.w = os.pipe()
        self.ep = select.epoll(1)
        self.ep.register(self.r, select.EPOLLIN)
        self.armed, self.window_s, self.path = True, 2.0, "armed: test pipe"

    def fileno(self) -> int:
        return self.ep.fileno()

    def drain(self) -> bool:
        try:
            return bool(os.read(self.r, 64))
        except BlockingIOError:
            return False

    def close(self) -> None:
        self.ep.close()
        os.close(self.r)
        os.close(self.w)


async def test_a_trigger_wakes_the_guard_at_once_not_at_the_next_poll(tmp_path) -> None:
    import asyncio
    import json
    import time

    from agent.guard.service import MemoryGuard
    from agent.protocol import GuardEvent
    from agent.settings import MemoryGuardSettings

    (tmp_path / "meminfo").write_text("MemAvailable:   4194304 kB\n")  # 4 GiB, reserve 0: memory is fine
    frames: list[str] = []
    got = asyncio.Event()
    settings = MemoryGuardSettings(enabled=True, action="warn", poll_s=5, hold_s=0, psi_full=20)

    def broadcast(text: str) -> None:
        frames.append(text)
        got.set()

    guard = MemoryGuard(settings, 0, broadcast=broadcast, proc_root=str(tmp_path))
    guard.make_trigger = PipeTrigger  # type: ignore[assignment]  # duck-typed stand-in for PsiTrigger (same methods, a pipe inside)
    task = asyncio.create_task(guard.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if guard.trigger is not None:
                break
        await asyncio.sleep(0.1)  # into its 5 s wait
        t0 = time.monotonic()
        os.write(guard.trigger.w, b"!")
        await asyncio.wait_for(got.wait(), 2)
        woke_in = time.monotonic() - t0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    event = GuardEvent.model_validate(json.loads(frames[0]))
    assert event.cause == "pressure" and event.result == "warned" and event.full_avg10 is None  # no PSI file: the trigger alone
    assert woke_in < 2 < settings.poll_s
    assert guard.trigger is None  # disarmed (and closed) when the task ends


def test_enabled_follows_unified_memory_and_stays_on_when_the_gpu_is_lost() -> None:
    from agent.guard.service import MemoryGuard
    from agent.settings import MemoryGuardSettings

    def frame(*memories):
        return {"gpus": [{"index": i, "memory": m} for i, m in enumerate(memories)]}

    guard = MemoryGuard(MemoryGuardSettings(), 0, broadcast=lambda _t: None)
    assert not guard.enabled  # nothing sampled yet
    guard.note_frame(frame({"unified": True}))
    assert guard.enabled
    guard.note_frame(frame(None))  # the GPU fell off the bus
    guard.note_frame({"gpus": []})
    assert guard.enabled
    discrete = MemoryGuard(MemoryGuardSettings(), 0, broadcast=lambda _t: None)
    discrete.note_frame(frame({"unified": False}, {"unified": False}))
    assert not discrete.enabled
    forced = MemoryGuard(MemoryGuardSettings(enabled=True), 0, broadcast=lambda _t: None)
    assert forced.enabled
    off = MemoryGuard(MemoryGuardSettings(enabled=False), 0, broadcast=lambda _t: None)
    off.note_frame(frame({"unified": True}))
    assert not off.enabled
    for g in (guard, discrete, forced, off):
        g.reader.close()
