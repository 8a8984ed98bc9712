"""The memory guard on a real agent, a real Docker engine and containers that really allocate.

Each "hog" is busybox ``(head -c Nm /dev/zero; sleep) | tail``: tail keeps everything it reads (there
is no newline, and the sleep keeps its input open), so the container's cgroup grows (about 150 MiB/s on the 2-core CI box) to N MiB and holds
it. The reserve is set from MemAvailable read right before, so the guard must fire partway.
Other test runs share this engine: every agent here is scoped with
``memory_guard.only_label`` to this session's label, so it can only ever touch containers
this session created.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from agent.containers.stats import cgroup_files
from agent.protocol import GuardEvent, Info
from tests.helpers.calls import call, next_frame, open_stream, wait_for
from tests.helpers.docker import DOCKER_TEST_LABEL, DOCKER_TEST_SESSION

pytestmark = pytest.mark.docker

GIB = 1024**3
MIB = 1024**2


def mem_available() -> int:
    with open("/proc/meminfo", "rb") as f:
        for line in f:
            if line.startswith(b"MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable")


def hog_command(mib: int) -> list[str]:
    # sh is PID 1 and would ignore SIGTERM: the trap makes it stop on `docker stop` like a real server.
    # The sleep keeps tail's input open: at EOF tail would print all it holds (one N MiB "line") and exit.
    return ["sh", "-c", f"trap 'exit 0' TERM; (head -c {mib}m /dev/zero; exec sleep 3600) | tail & wait"]


def run_hog(docker_engine, name: str, mib: int, *labels: str) -> str:
    extra = ["--log-driver", "none"] + [arg for label in labels for arg in ("--label", label)]
    return docker_engine.run(*extra, docker_engine.image, *hog_command(mib), name=name)


def guard_env(reserve_bytes: float, **guard: Any) -> dict[str, str]:
    env = {"SPARKDECK_MEMORY__RESERVE_GIB": f"{max(reserve_bytes, 0) / GIB:.4f}", "SPARKDECK_MEMORY_GUARD__ONLY_LABEL": DOCKER_TEST_LABEL}
    env.update({f"SPARKDECK_MEMORY_GUARD__{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in guard.items()})
    return env


class CgroupRecorder:
    """Samples (time, MemAvailable, the container's cgroup memory) every 20 ms in a thread until
    the cgroup disappears (the container stopped) or ``stop()``."""

    def __init__(self, pid: int):
        files = cgroup_files(pid)
        assert files is not None, "no cgroup for the container"
        self.files = files
        self.samples: list[tuple[float, int, int]] = []
        self.gone_at: float | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            raw = self.files.usage.read()
            now = time.monotonic()
            if raw is None or not raw.strip().isdigit():
                self.gone_at = now
                break
            self.samples.append((now, mem_available(), int(raw)))
            time.sleep(0.02)
        self.files.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)

    @property
    def peak(self) -> int:
        return max(s[2] for s in self.samples)


def state_of(docker_engine, name: str) -> str:
    return docker_engine.cli("inspect", "-f", "{{.State.Status}}", name, check=False)


def guard_audit(agent) -> list[dict]:
    r = call(agent, "GET", "/api/v1/audit", agent.control_token)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["entries"] if e["token"] == "memory-guard"]


def guard_info(agent) -> dict:
    r = call(agent, "GET", "/api/v1/info", agent.read_token)
    assert r.status_code == 200, r.text
    Info.model_validate(r.json())
    return r.json()["memory_guard"]


async def test_a_runaway_model_is_stopped_within_seconds_before_it_holds_all_it_asked_for(docker_engine, start_agent) -> None:
    idle = f"sdguard-idle-{DOCKER_TEST_SESSION}"
    hog = f"sdguard-hog-{DOCKER_TEST_SESSION}"
    try:
        # an older model, started first: stop-newest-model must leave it alone
        docker_engine.run("--label", "sparkdeck.model=sdguard-idle", docker_engine.image, "sleep", "300", name=idle)
        reserve = mem_available() - 0.75 * GIB  # read right before: other runs move MemAvailable too
        agent = start_agent("--simulate", "gb10", "--interval", "0.5", env=guard_env(reserve))
        info = guard_info(agent)
        assert info["enabled"] is True and info["action"] == "stop-newest-model"  # on by default: gb10 memory is unified
        print(f"memory guard PSI path: {info['psi_trigger']}")
        async with open_stream(agent) as ws:
            await next_frame(ws, lambda f: f["type"] == "hello", 10, "hello")
            run_hog(docker_engine, hog, 1500, "sparkdeck.model=sdguard-hog")
            recorder = CgroupRecorder(docker_engine.pid(hog))
            frame = await next_frame(ws, lambda f: f["type"] == "guard", 60, "a guard frame")
            await asyncio.to_thread(wait_for, lambda: recorder.gone_at is not None, 15, "the hog's cgroup to go")
        recorder.stop()

        event = GuardEvent.model_validate(frame)
        assert event.result == "stopped" and event.cause == "memory", frame
        assert event.container is not None and event.container.name == hog and event.container.model == "sdguard-hog"
        assert event.models_available_bytes is not None and event.models_available_bytes < 0
        assert state_of(docker_engine, hog) == "exited"
        assert state_of(docker_engine, idle) == "running"

        crossed = next((t for t, avail, _ in recorder.samples if avail - reserve < 0), None)
        assert crossed is not None, "MemAvailable never went below the reserve in the recorded samples"
        held = recorder.peak
        took = recorder.gone_at - crossed
        print(f"memory guard: stopped {took:.2f}s after crossing; the hog peaked at {held / MIB:.0f} MiB of 1500; {len(recorder.samples)} samples")
        assert took <= 3.0, f"stopped {took:.2f}s after memory for models went below zero"
        assert held < 1400 * MIB, f"the hog reached {held / MIB:.0f} MiB: it got (nearly) all it asked for"

        entries = guard_audit(agent)
        assert [(e["action"], e["target"], e["result"]) for e in entries] == [("stop", hog, "ok")]
        assert "memory for models" in entries[0]["detail"]
        assert f"memory guard: stopped {hog}" in agent.log()
        info = guard_info(agent)
        assert info["actions"] == 1 and info["last_event"]["container"]["name"] == hog
    finally:
        docker_engine.cli("rm", "-f", idle, hog, check=False)


async def test_warn_only_warns_once(docker_engine, start_agent) -> None:
    hog = f"sdguard-warnhog-{DOCKER_TEST_SESSION}"
    try:
        reserve = mem_available() - 0.5 * GIB
        agent = start_agent("--simulate", "gb10", "--interval", "0.5", env=guard_env(reserve, action="warn"))
        frames: list[dict] = []
        async with open_stream(agent) as ws:
            await next_frame(ws, lambda f: f["type"] == "hello", 10, "hello")
            run_hog(docker_engine, hog, 1500, "sparkdeck.model=sdguard-warnhog")
            frame = await next_frame(ws, lambda f: f["type"] == "guard", 60, "a guard frame")
            event = GuardEvent.model_validate(frame)
            assert event.result == "warned" and event.action == "warn" and event.container is None, frame
            with pytest.raises(AssertionError):  # still short for seconds more: no second frame in one episode
                await next_frame(ws, lambda f: frames.append(f) or f["type"] == "guard", 3, "a second guard frame")
        async with open_stream(agent) as late:  # a client connecting afterwards still learns of it, right after hello
            first_two = [json.loads(await late.recv()) for _ in range(2)]
        assert [f["type"] for f in first_two] == ["hello", "guard"] and first_two[1] == frame
        assert state_of(docker_engine, hog) == "running"
        assert [(e["action"], e["result"]) for e in guard_audit(agent)] == [("warn", "ok")]
        assert guard_info(agent)["tripped"] == "memory"
    finally:
        docker_engine.cli("rm", "-f", hog, check=False)


def _holding(docker_engine, names_mib: dict[str, int]) -> bool:
    for name, mib in names_mib.items():
        files = cgroup_files(docker_engine.pid(name))
        raw = files.usage.read() if files else None
        if files:
            files.close()
        if raw is None or int(raw) < 0.9 * mib * MIB:
            return False
    return True


async def test_stop_largest_picks_the_biggest_eligible_and_never_an_unlabelled_one(docker_engine, start_agent) -> None:
    small, medium, stranger = (f"sdguard-{n}-{DOCKER_TEST_SESSION}" for n in ("small", "medium", "stranger"))
    sizes = {small: 150, medium: 300, stranger: 450}
    try:
        run_hog(docker_engine, small, sizes[small], "sparkdeck.guard=allow")
        run_hog(docker_engine, medium, sizes[medium], "sparkdeck.guard=allow")
        run_hog(docker_engine, stranger, sizes[stranger])  # neither a model nor allowed: the biggest, and off limits
        await asyncio.to_thread(wait_for, lambda: _holding(docker_engine, sizes), 60, "the hogs to hold their memory", 0.2)

        # short from the start and for good: the guard stops one, waits, stops the next, then has nothing left
        env = guard_env(mem_available() + 4 * GIB, action="stop-largest", stop_timeout_s=1)
        agent = start_agent("--simulate", "gb10", "--interval", "0.5", env=env)
        await asyncio.to_thread(wait_for, lambda: len(guard_audit(agent)) >= 3, 40, "two stops and a warning", 0.3)
        entries = guard_audit(agent)
        assert [(e["action"], e["target"]) for e in entries[:3]] == [("stop", medium), ("stop", small), ("warn", "-")], entries
        assert "nothing eligible" in entries[2]["detail"]
        assert state_of(docker_engine, medium) == state_of(docker_engine, small) == "exited"
        assert state_of(docker_engine, stranger) == "running"
        agent.stop()

        # any_container = true: now the unlabelled one is fair game
        agent2 = start_agent("--simulate", "gb10", "--interval", "0.5", env={**env, "SPARKDECK_MEMORY_GUARD__ANY_CONTAINER": "true"})
        await asyncio.to_thread(wait_for, lambda: guard_audit(agent2), 30, "a stop", 0.3)
        first = guard_audit(agent2)[0]
        assert (first["action"], first["target"], first["result"]) == ("stop", stranger, "ok"), first
        assert state_of(docker_engine, stranger) == "exited"
    finally:
        docker_engine.cli("rm", "-f", small, medium, stranger, check=False)


def test_guard_is_off_by_default_where_memory_is_not_unified(start_agent) -> None:
    agent = start_agent("--simulate", "h100", "--interval", "0.5", env={"SPARKDECK_CONTAINERS": "false"})
    info = guard_info(agent)
    assert info["enabled"] is False and info["psi_trigger"] == "not armed"
    on = start_agent("--simulate", "h100", "--interval", "0.5", env={"SPARKDECK_CONTAINERS": "false", "SPARKDECK_MEMORY_GUARD__ENABLED": "true"})
    assert guard_info(on)["enabled"] is True
    wait_for(lambda: guard_info(on)["psi_trigger"] != "not armed", 10, "the guard to arm")
    print(f"PSI path: {guard_info(on)['psi_trigger']}")
    assert json.dumps(guard_info(on)).count("sdk_") == 0  # no secrets in what it reports


async def test_a_launched_model_stopped_by_the_guard_says_so_in_its_state(docker_engine, start_agent, tmp_path) -> None:
    name = f"sdguard-launched-{DOCKER_TEST_SESSION}"  # unique per session: the scope label below names it
    command = json.dumps(hog_command(1200))
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nname = "{name}"\nimage = "{docker_engine.image}"\ncommand = {command}\n')
    try:
        reserve = mem_available() - 0.6 * GIB
        env = guard_env(reserve)
        env["SPARKDECK_MEMORY_GUARD__ONLY_LABEL"] = f"sparkdeck.model={name}"  # launcher containers carry only this label
        agent = start_agent("--simulate", "gb10", "--interval", "0.5", "--models", str(models), env=env)
        async with open_stream(agent) as ws:
            await next_frame(ws, lambda f: f["type"] == "hello", 10, "hello")
            r = call(agent, "POST", f"/api/v1/models/{name}/start", agent.control_token)
            assert r.status_code == 202, r.text
            guard = await next_frame(ws, lambda f: f["type"] == "guard", 60, "a guard frame")
            stopped = await next_frame(ws, lambda f: f["type"] == "model_state" and f["state"] in ("stopped", "failed"), 10, "the model's end")
        assert guard["result"] == "stopped" and guard["container"]["model"] == name, guard
        assert stopped["state"] == "stopped" and stopped["message"].startswith("stopped by the memory guard"), stopped
        listing = call(agent, "GET", "/api/v1/models", agent.read_token).json()["models"]
        state = next(m for m in listing if m["name"] == name)["state"]
        assert state["state"] == "stopped" and not state["running"], state
    finally:
        docker_engine.cli("rm", "-f", f"sparkdeck-{name}", check=False)
