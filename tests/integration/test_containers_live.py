"""The live container view on a real Docker engine: event-driven list, stats, GPU memory per container."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from agent.protocol import ContainerDetail, Snapshot
from tests.helpers.calls import call, container_in, next_frame, open_stream, wait_for

pytestmark = pytest.mark.docker


def _name(prefix: str) -> str:
    return f"sdt-{prefix}-{uuid.uuid4().hex[:8]}"


async def test_cli_started_container_appears_within_a_second(docker_engine, start_agent) -> None:
    agent = start_agent("--simulate", "gb10", "--interval", "0.25")
    name = _name("cli")
    async with open_stream(agent) as ws:
        await next_frame(ws, lambda f: f.get("type") == "snapshot" and f["containers_status"]["state"] == "ok", 10, "engine ok")
        docker_engine.run(docker_engine.image, "sleep", "300", name=name)
        started = time.monotonic()
        frame = await next_frame(ws, lambda f: (container_in(f, name) or {}).get("state") == "running", 5, f"{name} running")
        latency = time.monotonic() - started
        print(f"docker run returned -> container in a frame: {latency * 1000:.0f} ms")
        assert latency <= 1.0, f"appeared {latency:.2f}s after docker run returned"
        Snapshot.model_validate(frame)  # the container rows follow the protocol exactly
        row = container_in(frame, name)
        assert row is not None
        assert row["state"] == "running" and row["image"] == docker_engine.image
        assert row["model"] is None and len(row["id"]) == 12
        assert not {"labels", "full_id", "created"} & set(row)  # descriptive fields stay out of the 1 Hz frame
        detail = {c["name"]: c for c in call(agent, "GET", "/api/v1/containers", agent.read_token).json()["containers"]}[name]
        ContainerDetail.model_validate(detail)
        assert detail["labels"]["sparkdeck.test"] == docker_engine.session and detail["full_id"].startswith(row["id"])
        assert len(detail["full_id"]) == 64 and detail["created"] > 0

        docker_engine.cli("stop", "-t", "0", name)
        stopped = time.monotonic()
        await next_frame(ws, lambda f: (container_in(f, name) or {}).get("state") == "exited", 5, "exited state")
        assert time.monotonic() - stopped <= 1.0
        docker_engine.cli("rm", name)
        await next_frame(ws, lambda f: f.get("type") == "snapshot" and container_in(f, name) is None, 5, "container gone")


def test_rows_carry_ports_health_and_live_figures(docker_engine, start_agent) -> None:
    busy, web = _name("busy"), _name("web")
    docker_engine.run("--memory", "64m", docker_engine.image, "sh", "-c", "while :; do :; done", name=busy)
    docker_engine.run(
        "-p",
        "127.0.0.1::8080",
        "--health-cmd",
        "wget -q -O- http://127.0.0.1:8080/health",
        "--health-interval",
        "1s",
        docker_engine.image,
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/www",
        name=web,
    )
    try:
        agent = start_agent("--simulate", "gb10", "--interval", "0.5")

        def rows() -> dict:
            r = call(agent, "GET", "/api/v1/containers", agent.read_token)
            assert r.status_code == 200
            return {c["name"]: c for c in r.json()["containers"]}

        row = wait_for(lambda: (r := rows().get(busy)) and r["cpu_percent"] and r["cpu_percent"] > 30 and r, 20, "busy loop CPU")
        assert row["memory_limit_bytes"] == 64 * 1024 * 1024
        assert 0 < row["memory_bytes"] < 64 * 1024 * 1024

        w = wait_for(lambda: (r := rows().get(web)) and r["health"] == "healthy" and r, 30, "healthy web container")
        port = w["ports"][0]["host_port"]
        assert w["ports"][0]["container_port"] == 8080 and w["ports"][0]["protocol"] == "tcp"
        with httpx.Client() as client:

            def traffic() -> dict | None:
                for _ in range(20):
                    assert client.get(f"http://127.0.0.1:{port}/health").text == "ok\n"
                r = rows()[web]
                return r if r["net_rx_bytes_s"] and r["net_tx_bytes_s"] else None

            wait_for(traffic, 20, "network rates from HTTP traffic")
    finally:  # a busy loop left running would take one of CI's two cores for the rest of the session
        docker_engine.cli("rm", "-f", busy, web, check=False)


async def test_gpu_memory_per_container_end_to_end(docker_engine, start_agent) -> None:
    gpu_user, idle = _name("gpu"), _name("idle")
    docker_engine.run(docker_engine.image, "sleep", "300", name=gpu_user)
    docker_engine.run(docker_engine.image, "sleep", "300", name=idle)
    pid = docker_engine.pid(gpu_user)
    # the fake NVML reports a process inside the container and one on the host (this test runner)
    import os

    env = {"SPARKDECK_SIMULATE_PROCESSES": f"{pid}:123456789,{os.getpid()}:5000"}
    agent = start_agent("--simulate", "h100", "--interval", "0.25", env=env)
    async with open_stream(agent) as ws:
        frame = await next_frame(ws, lambda f: container_in(f, gpu_user) is not None and container_in(f, idle) is not None, 10, "both containers")
    assert {p["pid"] for p in frame["gpus"][0]["processes"]} == {pid, os.getpid()}
    assert container_in(frame, gpu_user)["gpu_memory_bytes"] == 123456789
    assert container_in(frame, idle)["gpu_memory_bytes"] == 0  # known: no GPU process in it
    listed = {c["name"]: c for c in call(agent, "GET", "/api/v1/containers", agent.read_token).json()["containers"]}
    assert listed[gpu_user]["gpu_memory_bytes"] == 123456789 and listed[idle]["gpu_memory_bytes"] == 0


def test_engine_unreachable_is_reported_and_telemetry_flows(start_agent, tmp_path) -> None:
    """Needs no engine: the agent points at a socket that does not exist."""
    agent = start_agent("--simulate", "gb10", "--interval", "0.25", env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"})
    snap = call(agent, "GET", "/api/v1/snapshot", agent.read_token).json()
    status = snap["containers_status"]
    assert status["state"] == "unavailable"
    assert "no-docker.sock" in status["message"] and status["fix"]
    assert snap["containers"] == [] and snap["gpus"] and snap["host"]
    r = call(agent, "POST", "/api/v1/containers/whatever/stop", agent.control_token)
    assert r.status_code == 503 and r.json()["error"] == "engine_unavailable"
    assert "Traceback" not in agent.log()


async def test_reconcile_alone_finds_and_drops_containers(docker_engine) -> None:
    """The periodic full listing, without the event stream: what an event missed is caught here."""
    from agent.containers.engine import Engine
    from agent.containers.tracker import ContainerTracker

    tracker = ContainerTracker(Engine())
    name = _name("reconcile")
    try:
        cid = docker_engine.run(docker_engine.image, "sleep", "300", name=name)
        await tracker.reconcile()
        assert tracker.entries[cid]["name"] == name and tracker.entries[cid]["state"] == "running"
        assert tracker.pids[cid] == docker_engine.pid(name)
        docker_engine.cli("rm", "-f", name)
        await tracker.reconcile()
        assert cid not in tracker.entries and cid not in tracker.pids
    finally:
        await tracker.engine.close()
