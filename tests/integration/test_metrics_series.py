"""/metrics with a real container holding memory: the container and memory series the README lists, linted by promtool."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.calls import wait_for
from tests.helpers.prometheus import promtool_check

pytestmark = pytest.mark.docker

HOLD_MIB = 1500
# tail keeps every byte it reads: the container really holds 1.5 GB (head's sleep keeps the pipe open)
HOG = ["sh", "-c", f"trap 'exit 0' TERM; (head -c {HOLD_MIB}m /dev/zero; exec sleep 3600) | tail & wait"]
HELD = HOLD_MIB // 2 * 2**20  # at least half of it counted: on a busy 2-core machine tail fills it slowly
MEMORY_SERIES = ("used", "available", "free", "reclaimable", "shmem", "gpu_process", "reserve", "models_available")


def scrape(agent) -> str:
    r = httpx.get(agent.url + "/metrics", headers=agent.headers(agent.read_token), timeout=30)
    assert r.status_code == 200, r.text
    return r.text


def samples(text: str, name: str) -> list:
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def test_metrics_carry_a_real_containers_series_and_the_memory_picture(docker_engine, start_agent) -> None:
    name = f"sdmetrics-{docker_engine.session}"
    docker_engine.run(docker_engine.image, *HOG, name=name)
    try:
        agent = start_agent("--simulate", "gb10", "--interval", "0.5", env={"SPARKDECK_SIMULATE_PROCESSES": f"{docker_engine.pid(name)}:{2**30}"})

        def holding() -> str | None:
            text = scrape(agent)
            mem = [s for s in samples(text, "sparkdeck_container_memory_bytes") if s.labels["container"] == name]
            return text if mem and mem[0].value >= HELD else None

        text = wait_for(holding, 60, f"{name} holding {HELD >> 20} MiB or more in /metrics")
        labels = {"container": name, "image": docker_engine.image, "model": ""}
        for series in ("sparkdeck_container_cpu_ratio", "sparkdeck_container_memory_bytes", "sparkdeck_container_running"):
            assert [s.labels for s in samples(text, series) if s.labels["container"] == name] == [labels], series
        assert next(s.value for s in samples(text, "sparkdeck_container_running") if s.labels["container"] == name) == 1
        gpu = [s.value for s in samples(text, "sparkdeck_container_gpu_memory_bytes") if s.labels["container"] == name]
        assert gpu == [2**30]  # the fake NVML's process in this container: its GPU memory is the container's
        for series in MEMORY_SERIES:
            got = samples(text, f"sparkdeck_memory_{series}_bytes")
            assert len(got) == 1 and got[0].value >= 0, series
        assert samples(text, "sparkdeck_memory_used_bytes")[0].value >= HELD  # the host's memory holds the container's
        promtool_check(text)
    finally:  # 1.5 GB held for the rest of the session would shrink every later memory figure
        docker_engine.cli("rm", "-f", name, check=False)
