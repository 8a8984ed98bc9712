"""Snapshot tests (pytest-textual-snapshot): every screen at 80x24 and 160x48.

Deterministic: no agent, no network; fixed frames are fed straight into the
clients, the clock is pinned and local time is UTC. Update after an intended
change with ``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and look
at the SVGs (tests/tui/__snapshots__/test_tui_snapshots/) before committing.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.helpers.tui_fakes import CATALOG, NOW, SIZES, GiB, app_for, container, fleet, spark_client
from tui.screens.containers import ContainersScreen
from tui.screens.logs import LogsScreen
from tui.screens.models import ModelsScreen
from tui.widgets.containers_table import ContainersTable


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_overview(snap_compare, size):
    assert snap_compare(app_for(fleet(), "overview"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_machine_detail(snap_compare, size):
    assert snap_compare(app_for([spark_client()], "detail"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_machine_detail_stale_two_gpus(snap_compare, size):
    clients = fleet()
    app = app_for(clients, "overview")

    async def open_second(pilot):
        app.current = 1
        app.action_view("detail")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_second)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_containers(snap_compare, size):
    assert snap_compare(app_for([spark_client()], "containers"), terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_containers_read_only_sorted_by_cpu(snap_compare, size):
    app = app_for([spark_client("read")], "containers")

    async def sort(pilot):
        assert isinstance(app.screen, ContainersScreen)
        await pilot.press("S", "S")  # name -> state -> CPU%
        assert app.screen.query_one(ContainersTable).sort_key == "cpu_percent"

    assert snap_compare(app, terminal_size=size, run_before=sort)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_logs(snap_compare, size):
    app = app_for([spark_client()], "containers")

    async def open_logs(pilot):
        app.push_screen(LogsScreen(0, "a1" * 32, "vllm-qwen"))
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=open_logs)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_logs_timestamps_and_search(snap_compare, size):
    """`t` shows the agent's timestamps; `/step 2` highlights matches, jumps to the newest, pauses following."""
    app = app_for([spark_client()], "containers")

    async def search(pilot):
        app.push_screen(LogsScreen(0, "a1" * 32, "vllm-qwen"))
        await pilot.pause(0.2)
        await pilot.press("t", "slash", *"step 2", "enter")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=size, run_before=search)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_command_line_unknown_command(snap_compare, size):
    app = app_for(fleet(), "overview")
    assert snap_compare(app, terminal_size=size, press=["colon", *"frob", "enter"])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_models(snap_compare, size):
    app = app_for([spark_client()], "overview")

    async def open_models(pilot):
        cl = app.clients[0]
        cl.handle_frame(
            {
                "type": "pull_progress",
                "v": 1,
                "model": "sglang",
                "image": "lmsysorg/sglang:spark",
                "status": "Downloading",
                "current_bytes": 3 * GiB,
                "total_bytes": 12 * GiB,
            }
        )
        app.push_screen(ModelsScreen(0, catalog=CATALOG))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_models)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_model_launch_form(snap_compare, size):
    app = app_for([spark_client()], "overview")

    async def open_form(pilot):
        app.push_screen(ModelsScreen(0, catalog=CATALOG))
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_form)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_confirm_remove(snap_compare, size):
    app = app_for([spark_client()], "containers")
    assert snap_compare(app, terminal_size=size, press=["D"])


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_help(snap_compare, size):
    assert snap_compare(app_for([spark_client()], "detail"), terminal_size=size, press=["question_mark"])


def incident_frames(start: float, n: int, *, low_gib: float, temp: float) -> list[dict]:
    """Samples for an incident: available memory falling to low_gib, one container running."""
    frames = []
    for i in range(n):
        avail = int((60 - (60 - low_gib) * i / (n - 1)) * GiB)
        frames.append(
            {
                "seq": 5000 + i,
                "ts": start + i,
                "host": {"memory": {"total_bytes": 128 * GiB, "available_bytes": avail, "used_bytes": 128 * GiB - avail, "percent": 50.0}, "temperatures": []},
                "gpus": [
                    {
                        "index": 0,
                        "status": "ok",
                        "utilization_gpu_percent": 95.0,
                        "temperature_c": temp - 10 * (1 - i / n),
                        "power_w": 90.0,
                        "throttle_reasons": [],
                    }
                ],
                "containers": [
                    container("a1" * 6, "vllm-qwen", "nvcr.io/nvidia/vllm:25.09-py3", "running", "Up 2 hours", 180.0, 6 * GiB, 70 * GiB, model="vllm")
                ],
            }
        )
    return frames


def incidents_fixture() -> list[dict]:
    from agent.incidents.records import build

    common: dict[str, Any] = {"reserve_bytes": 8 * GiB, "psi_full_limit": 20.0, "throttle_c": 95.0}
    older = build(
        incident_id=1,
        kind="agent-crash",
        detected_at=NOW - 86400,
        run={"started": NOW - 90000, "agent_version": "0.1.0"},
        frames=incident_frames(NOW - 86520, 120, low_gib=30, temp=70),
        **common,
    )
    newer = build(
        incident_id=2,
        kind="host-reboot",
        detected_at=NOW - 600,
        run={"started": NOW - 7200, "agent_version": "0.1.0"},
        frames=incident_frames(NOW - 1320, 120, low_gib=1.5, temp=82),
        **common,
    )
    return [newer, older]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_incidents(snap_compare, size):
    from tui.screens.incidents import IncidentsScreen

    app = app_for([spark_client()], "overview")

    async def open_incidents(pilot):
        app.push_screen(IncidentsScreen(0, incidents=incidents_fixture()))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=open_incidents)


def processes_fixture() -> list[dict]:
    vllm = {"id": "a1" * 6, "full_id": "a1" * 32, "name": "vllm-qwen"}
    comfy = {"id": "e5" * 6, "full_id": "e5" * 32, "name": "comfyui"}

    def proc(pid, user, cmd, container, main, gpu_mem, cpu, rss, age_s, gpu=0):
        return {
            "gpu": gpu,
            "gpu_uuid": "GPU-5a1e7c2b",
            "pid": pid,
            "user": user,
            "uid": 0 if user == "root" else 1000,
            "name": cmd.split()[0].rsplit("/", 1)[-1][:15],
            "command": cmd,
            "container": container,
            "container_main": main,
            "used_gpu_memory_bytes": gpu_mem,
            "cpu_percent": cpu,
            "rss_bytes": rss,
            "start_time": NOW - age_s,
        }

    return [
        proc(
            48211,
            "root",
            "python3 -m vllm.entrypoints.openai.api_server --model Qwen/Qwen2.5-7B-Instruct --gpu-memory-utilization 0.85",
            vllm,
            True,
            48 * GiB,
            104.2,
            6 * GiB,
            7300,
        ),
        proc(
            48390, "root", "python3 -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5)", vllm, False, 4 * GiB, 3.1, 900 * 1024**2, 7290
        ),
        proc(51002, "root", "python main.py --listen 0.0.0.0 --port 8188", comfy, True, 11 * GiB, 12.0, 3 * GiB, 1800),
        proc(60417, "me", "/home/me/.venv/bin/python train.py --config configs/lora.yaml", None, False, 9 * GiB, 98.7, 5 * GiB, 420),
        proc(60655, "me", "ollama runner --model /home/me/.ollama/models/blobs/sha256-6a0746a1ec1a", None, False, None, 0.4, 700 * 1024**2, 95),
    ]


def _open_processes(app, outcome: str = ""):
    from tui.screens.processes import ProcessesScreen

    async def run(pilot):
        screen = ProcessesScreen(0, processes=processes_fixture())
        app.push_screen(screen)
        await pilot.pause(0.2)
        screen.outcome = outcome
        screen.update_view()
        await pilot.pause(0.1)

    return run


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_processes(snap_compare, size):
    app = app_for([spark_client()], "detail")
    outcome = (
        "[b $warning]SIGTERM had no effect[/]: pid 51002 is still running 3 s after SIGTERM: it is the main process of container comfyui,"
        " and a container's main process ignores SIGTERM and SIGINT unless it handles them; send KILL or stop the container  [dim](K sends SIGKILL)[/dim]"
    )
    assert snap_compare(app, terminal_size=size, run_before=_open_processes(app, outcome))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_processes_read_only(snap_compare, size):
    app = app_for([spark_client("read")], "detail")
    assert snap_compare(app, terminal_size=size, run_before=_open_processes(app))
