"""GET /metrics: the latest snapshot in Prometheus text format (no extra sampling per scrape)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response

from agent.api.deps import authenticate
from agent.auth import bearer_token

router = APIRouter()


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _families(frame: dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily  # imported on first scrape: most agents are never scraped

    host = frame["host"]
    g = GaugeMetricFamily
    yield g("sparkdeck_up", "1 while the agent samples", value=1)
    yield g("sparkdeck_snapshot_seq", "seq of the snapshot these values come from", value=frame["seq"])
    yield g("sparkdeck_cpu_utilization_ratio", "host CPU busy, 0..1", value=(host["cpu"]["percent"] or 0) / 100)
    yield g("sparkdeck_memory_total_bytes", "MemTotal", value=host["memory"]["total_bytes"])
    yield g("sparkdeck_memory_used_bytes", "MemTotal - MemAvailable", value=host["memory"]["used_bytes"])
    yield from _memory_families(host["memory"])
    yield g("sparkdeck_swap_used_bytes", "swap in use", value=host["swap"]["used_bytes"])
    if frame["noise"]["index"] is not None:
        noise = g("sparkdeck_noise_index", "noise proxy 0..100", labels=["source"])
        noise.add_metric([frame["noise"]["source"]], frame["noise"]["index"])
        yield noise
    temp = g("sparkdeck_host_temperature_celsius", "hwmon temperature sensors", labels=["chip", "label"])
    for t in host["temperatures"]:
        temp.add_metric([t["chip"], t["label"]], t["current_c"])
    yield temp
    gpu_fields = [
        ("utilization_gpu_percent", "sparkdeck_gpu_utilization_ratio", "GPU busy, 0..1", 0.01),
        ("power_w", "sparkdeck_gpu_power_watts", "GPU power draw", 1),
        ("power_limit_w", "sparkdeck_gpu_power_limit_watts", "GPU power limit", 1),
        ("temperature_c", "sparkdeck_gpu_temperature_celsius", "GPU temperature", 1),
        ("energy_j", "sparkdeck_gpu_energy_joules", "GPU energy since driver load", 1),
        ("sm_clock_mhz", "sparkdeck_gpu_sm_clock_hertz", "SM clock", 1e6),
        ("fan_percent", "sparkdeck_gpu_fan_ratio", "GPU fan duty, 0..1", 0.01),
    ]
    fams = {key: g(name, doc, labels=["gpu", "uuid", "name"]) for key, name, doc, _ in gpu_fields}
    mem_used = g("sparkdeck_gpu_memory_used_bytes", "GPU memory used (unified: system RAM in use)", labels=["gpu", "uuid", "name", "unified"])
    up = g("sparkdeck_gpu_up", "1 when the GPU answers, 0 when in error", labels=["gpu", "uuid", "name"])
    for gpu in frame["gpus"]:
        labels = [str(gpu["index"]), gpu.get("uuid") or "", gpu.get("name") or ""]
        up.add_metric(labels, 1 if gpu["status"] == "ok" else 0)
        _add_fields(fams, gpu_fields, gpu, labels)
        mem = gpu.get("memory") or {}
        if mem.get("used_bytes") is not None:
            mem_used.add_metric([*labels, "true" if mem.get("unified") else "false"], mem["used_bytes"])
    yield up
    yield from fams.values()
    yield mem_used
    c_cpu = g("sparkdeck_container_cpu_ratio", "container CPU, 1 = one core", labels=["container", "image", "model"])
    c_mem = g("sparkdeck_container_memory_bytes", "container memory", labels=["container", "image", "model"])
    c_gpu = g("sparkdeck_container_gpu_memory_bytes", "GPU memory of the container's processes", labels=["container", "image", "model"])
    c_up = g("sparkdeck_container_running", "1 while running", labels=["container", "image", "model"])
    for c in frame["containers"]:
        labels = [c.get("name") or c["id"][:12], c.get("image") or "", c.get("model") or ""]
        c_up.add_metric(labels, 1 if c.get("state") == "running" else 0)
        if c.get("cpu_percent") is not None:
            c_cpu.add_metric(labels, c["cpu_percent"] / 100)
        if c.get("memory_bytes") is not None:
            c_mem.add_metric(labels, c["memory_bytes"])
        if c.get("gpu_memory_bytes") is not None:
            c_gpu.add_metric(labels, c["gpu_memory_bytes"])
    yield from (c_up, c_cpu, c_mem, c_gpu)
    yield from _thermal_families(host)
    yield from _serving_families(frame["containers"])


def _add_fields(fams: dict[str, Any], fields: list[tuple[str, str, str, float]], obj: dict[str, Any], labels: list[str]) -> None:
    """One sample per (field, metric, help, scale) the object reports; a null field is left out, not 0."""
    for key, _, _, scale in fields:
        if obj.get(key) is not None:
            fams[key].add_metric(labels, obj[key] * scale)


def _thermal_families(host: dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    zone = GaugeMetricFamily("sparkdeck_thermal_zone_celsius", "/sys/class/thermal zone temperature", labels=["zone", "type"])
    trip = GaugeMetricFamily("sparkdeck_thermal_trip_celsius", "thermal zone trip point", labels=["zone", "type", "trip"])
    for z in host.get("thermal_zones") or []:
        if z["temp_c"] is not None:
            zone.add_metric([z["zone"], z["type"]], z["temp_c"])
        for i, t in enumerate(z["trips"]):
            if t["temp_c"] is not None:
                trip.add_metric([z["zone"], z["type"], f"{i}:{t['type']}"], t["temp_c"])
    yield from (zone, trip)


_SERVING = [  # (field, metric, help, scale)
    ("requests_running", "sparkdeck_serving_requests_running", "requests the model server is running", 1),
    ("requests_waiting", "sparkdeck_serving_requests_waiting", "requests queued in the model server", 1),
    ("kv_cache_usage_percent", "sparkdeck_serving_kv_cache_usage_ratio", "KV cache in use, 0..1", 0.01),
    ("prompt_tokens_per_s", "sparkdeck_serving_prompt_tokens_per_second", "prompt tokens processed per second (last window)", 1),
    ("generation_tokens_per_s", "sparkdeck_serving_generation_tokens_per_second", "tokens generated per second (last window)", 1),
    ("ttft_p50_s", "sparkdeck_serving_ttft_p50_seconds", "median time to first token over the last window", 1),
]


def _serving_families(containers: list[dict[str, Any]]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    labels = ["container", "model", "kind"]
    fams = {key: GaugeMetricFamily(name, doc, labels=labels) for key, name, doc, _ in _SERVING}
    up = GaugeMetricFamily("sparkdeck_serving_up", "1 when the model server's metrics answered, 0 when not", labels=labels)
    for c in containers:
        s = c.get("serving")
        if not s:
            continue
        lv = [c.get("name") or c["id"][:12], c.get("model") or "", s["kind"]]
        up.add_metric(lv, 0 if s.get("error") else 1)
        _add_fields(fams, _SERVING, s, lv)
    yield up
    yield from fams.values()


_MEMORY = [  # (field, metric, help); a null field is left out, not exported as 0
    ("available_bytes", "sparkdeck_memory_available_bytes", "MemAvailable"),
    ("free_bytes", "sparkdeck_memory_free_bytes", "MemFree"),
    ("reclaimable_bytes", "sparkdeck_memory_reclaimable_bytes", "page cache the kernel can drop (Active(file)+Inactive(file)) plus SReclaimable"),
    ("shmem_bytes", "sparkdeck_memory_shmem_bytes", "Shmem: tmpfs and /dev/shm"),
    ("gpu_process_bytes", "sparkdeck_memory_gpu_process_bytes", "GPU processes' memory where it is system RAM (unified)"),
    ("reserve_bytes", "sparkdeck_memory_reserve_bytes", "safety reserve kept free of models (memory.reserve_gib)"),
    ("models_available_bytes", "sparkdeck_memory_models_available_bytes", "MemAvailable less the reserve; negative when the reserve is eaten into"),
]


def _memory_families(mem: dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    for key, name, doc in _MEMORY:
        if mem.get(key) is not None:
            yield GaugeMetricFamily(name, doc, value=mem[key])
    pressure = mem.get("pressure")
    if pressure:  # PSI avg10 is a percent of time; exported as a 0..1 ratio
        yield GaugeMetricFamily(
            "sparkdeck_memory_pressure_some_ratio", "share of the last 10 s some task stalled on memory (PSI some avg10)", value=pressure["some_avg10"] / 100
        )
        yield GaugeMetricFamily(
            "sparkdeck_memory_pressure_full_ratio", "share of the last 10 s all tasks stalled on memory (PSI full avg10)", value=pressure["full_avg10"] / 100
        )


class _LatestCollector:
    def __init__(self, frame: dict[str, Any]):
        self.frame = frame

    def collect(self) -> Iterator[Any]:
        return _families(self.frame)


def render(frame: dict[str, Any]) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_LatestCollector(frame))
    return generate_latest(registry)


@router.get("/metrics", summary="Prometheus metrics from the latest snapshot", response_class=Response)
async def metrics(request: Request) -> Response:
    agent = request.app.state.agent
    if not agent.settings.metrics_public:
        addr = request.client.host if request.client else "?"
        authenticate(agent, bearer_token(request.headers.get("authorization")), addr, "read")
    text = agent.ring.latest_text
    if text is None:
        return Response("# no snapshot yet\n", media_type=CONTENT_TYPE, status_code=503)
    return Response(render(json.loads(text)), media_type=CONTENT_TYPE)
