"""Model-server metrics: parsing real metric names, rates and TTFT median from deltas, detection,
and end to end: busybox httpd in real containers serving metrics files the test rewrites,
watched by a real agent. (No real inference server with a model installs here.)"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import httpx
import pytest

from agent.containers.catalog import METRICS_LABEL, Catalog, Secrets, render
from agent.containers.serving import Target, Unreachable, kind_from_image, parse_ollama, parse_prometheus, quantile, summarize, target_for, wanted
from agent.containers.serving_poll import FetchError, fetch
from agent.protocol import Snapshot
from tests.helpers.agent import free_port
from tests.helpers.calls import wait_for

BUCKETS = (0.01, 0.05, 0.1, 0.25, 1.0)


def vllm_text(prompt: float, gen: float, ttft: dict[float, int], running: int = 2, waiting: int = 1, kv: float = 0.42, old_kv_name: bool = False) -> str:
    """vLLM's /metrics as it is: TYPE lines, a model_name label, cumulative buckets, _sum/_count."""
    kv_name = "vllm:gpu_cache_usage_perc" if old_kv_name else "vllm:kv_cache_usage_perc"
    lines = [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
        f'vllm:num_requests_running{{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"}} {running}.0',
        "# TYPE vllm:num_requests_waiting gauge",
        f'vllm:num_requests_waiting{{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"}} {waiting}.0',
        f"# TYPE {kv_name} gauge",
        f'{kv_name}{{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"}} {kv}',
        "# TYPE vllm:prompt_tokens counter",
        f'vllm:prompt_tokens_total{{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"}} {prompt}',
        "# TYPE vllm:generation_tokens counter",
        f'vllm:generation_tokens_total{{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"}} {gen}',
        "# TYPE vllm:time_to_first_token_seconds histogram",
    ]
    cum = 0
    for le in BUCKETS:
        cum += ttft.get(le, 0)
        lines.append(f'vllm:time_to_first_token_seconds_bucket{{engine="0",le="{le}",model_name="Qwen/Qwen2.5-7B-Instruct"}} {cum}.0')
    lines.append(f'vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="Qwen/Qwen2.5-7B-Instruct"}} {cum}.0')
    lines.append(f'vllm:time_to_first_token_seconds_count{{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"}} {cum}.0')
    lines.append('vllm:time_to_first_token_seconds_sum{engine="0",model_name="Qwen/Qwen2.5-7B-Instruct"} 1.5')
    return "\n".join(lines) + "\n"


def sglang_text(prompt: float, gen: float) -> str:
    return (
        "# HELP sglang:num_running_reqs The number of running requests.\n# TYPE sglang:num_running_reqs gauge\n"
        'sglang:num_running_reqs{model_name="m"} 3.0\n# TYPE sglang:num_queue_reqs gauge\nsglang:num_queue_reqs{model_name="m"} 0.0\n'
        '# TYPE sglang:token_usage gauge\nsglang:token_usage{model_name="m"} 0.28\n'
        f'# TYPE sglang:prompt_tokens_total counter\nsglang:prompt_tokens_total{{model_name="m"}} {prompt}\n'
        f'# TYPE sglang:generation_tokens_total counter\nsglang:generation_tokens_total{{model_name="m"}} {gen}\n'
    )


# ---- pure logic ---------------------------------------------------------------------------


def test_vllm_window_rates_and_ttft_median():
    a = parse_prometheus(vllm_text(1000, 500, {0.05: 4}))
    b = parse_prometheus(vllm_text(2000, 1500, {0.05: 4, 0.1: 10}))
    first = summarize("vllm", "label", a, None, 10.0)
    assert first["requests_running"] == 2 and first["requests_waiting"] == 1 and first["kv_cache_usage_percent"] == 42.0
    assert first["prompt_tokens_per_s"] is None and first["ttft_p50_s"] is None  # one reading: no window yet
    s = summarize("vllm", "label", b, (10.0, a), 15.0)
    assert s["prompt_tokens_per_s"] == 200.0 and s["generation_tokens_per_s"] == 200.0
    assert s["ttft_p50_s"] == 0.075  # 10 new observations all in (0.05, 0.1]: the median interpolates to the middle
    assert s["error"] is None
    # the agent hands the parser only the lines it reads: the same figures
    fa, fb = (parse_prometheus(vllm_text(*args), wanted("vllm")) for args in ((1000, 500, {0.05: 4}), (2000, 1500, {0.05: 4, 0.1: 10})))
    assert summarize("vllm", "label", fb, (10.0, fa), 15.0) == s
    restarted = summarize("vllm", "label", a, (15.0, b), 20.0)
    assert restarted["prompt_tokens_per_s"] is None and restarted["ttft_p50_s"] is None  # counters went down
    old = summarize("vllm", "label", parse_prometheus(vllm_text(1, 1, {}, kv=0.5, old_kv_name=True)), None, 1.0)
    assert old["kv_cache_usage_percent"] == 50.0  # older vLLM name


def test_quantile_edges():
    inf = float("inf")
    assert quantile(0.5, {0.1: 0, inf: 0}) is None
    assert quantile(0.5, {0.1: 0, 1.0: 0, inf: 4}) == 1.0  # all above the last finite bound
    assert quantile(0.5, {0.1: 2, inf: 4}) == 0.1
    assert quantile(0.5, {0.1: 0}) is None  # no +Inf bucket: not a histogram we trust


def test_sglang_ollama_and_wrong_server():
    s = summarize("sglang", "image", parse_prometheus(sglang_text(10, 20)), (0.0, parse_prometheus(sglang_text(0, 0))), 5.0)
    assert (s["requests_running"], s["requests_waiting"], s["kv_cache_usage_percent"]) == (3, 0, 28.0)
    assert s["prompt_tokens_per_s"] == 2.0 and s["generation_tokens_per_s"] == 4.0
    o = summarize(
        "ollama", "label", parse_ollama(json.dumps({"models": [{"name": "llama3.2:1b", "size": 2_000_000_000, "size_vram": 1_500_000_000}]})), None, 1.0
    )
    assert o["models"] == [{"name": "llama3.2:1b", "size_bytes": 2_000_000_000, "size_vram_bytes": 1_500_000_000}] and o["requests_running"] == 1
    wrong = summarize("vllm", "image", parse_prometheus("# TYPE go_goroutines gauge\ngo_goroutines 8\n"), None, 1.0)
    assert "none of the vllm metric names" in wrong["error"]
    with pytest.raises(ValueError):
        parse_prometheus("this is { not prometheus\n")


def test_detection_by_image_and_label():
    assert kind_from_image("nvcr.io/nvidia/vllm:25.09-py3") == "vllm"
    assert kind_from_image("lmsysorg/sglang:spark") == "sglang"
    assert kind_from_image("ghcr.io/ggml-org/llama.cpp:server-cuda") == "llama.cpp"
    assert kind_from_image("ollama/ollama:latest") == "ollama"
    assert kind_from_image("nvcr.io/nvidia/tensorrt-llm/release:spark-single-gpu-dev") == "trtllm"
    assert kind_from_image("ghcr.io/open-webui/open-webui:ollama") is None  # the tag does not make a server
    assert kind_from_image("localhost:5000/busybox") is None
    ports = [{"host_ip": "0.0.0.0", "host_port": 18000, "container_port": 8000, "protocol": "tcp"}]
    assert target_for({"image": "vllm/vllm-openai:v0.10", "ports": ports}) == Target("vllm", "127.0.0.1", 18000, "/metrics", "image")
    assert isinstance(target_for({"image": "lmsysorg/sglang:x", "ports": []}), Unreachable)
    lab = {METRICS_LABEL: json.dumps({"kind": "vllm", "port": "8000/tcp", "path": "/m"})}
    assert target_for({"image": "busybox", "ports": ports, "labels": lab}) == Target("vllm", "127.0.0.1", 18000, "/m", "label")
    bad = target_for({"image": "busybox", "ports": ports, "labels": {METRICS_LABEL: "{nope"}})
    assert isinstance(bad, Unreachable) and "must be" in bad.error
    assert target_for({"image": "busybox", "ports": ports}) is None
    # --network host: nothing is published, the server listens on the host's own port
    assert target_for({"image": "nvcr.io/nvidia/vllm:25.09-py3", "ports": []}, host_network=True) == Target("vllm", "127.0.0.1", 8000, "/metrics", "image")
    hl = {METRICS_LABEL: json.dumps({"kind": "sglang", "port": "31000/tcp", "path": "/metrics"})}
    assert target_for({"image": "x", "ports": [], "labels": hl}, host_network=True) == Target("sglang", "127.0.0.1", 31000, "/metrics", "label")


def test_builtin_templates_label_their_metrics(tmp_path):
    cat = Catalog(tmp_path / "none.toml")
    spec = render(cat.models["vllm"], Secrets(None, {}))
    assert json.loads(spec.body["Labels"][METRICS_LABEL]) == {"kind": "vllm", "port": "8000/tcp", "path": "/metrics"}
    assert METRICS_LABEL not in render(cat.models["open-webui"], Secrets(None, {})).body["Labels"]
    assert cat.get("sglang").metrics.kind == "sglang" and "--enable-metrics" in cat.get("sglang").command
    assert cat.get("ollama").metrics.path == "/api/ps" and cat.get("trtllm").metrics.path == "/prometheus/metrics"


def test_fetch_bounds_time_and_size():
    """A server that accepts and never answers, and one that answers too much: both cost at most the bound."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    held = []

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            held.append(c)
            data = c.recv(4096)
            if b"/big" in data:
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
                try:
                    c.sendall(b"x" * 3_000_000)
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(FetchError, match="no answer within|longer than"):
        fetch("127.0.0.1", port, "/metrics", timeout_s=0.5)
    assert time.monotonic() - t0 < 1.5
    with pytest.raises(FetchError, match="larger than 2 MiB"):
        fetch("127.0.0.1", port, "/big", timeout_s=3)
    srv.close()
    for c in held:
        c.close()


# ---- live: real containers, real agent ------------------------------------------------------------


@pytest.mark.docker
def test_fake_servers_in_containers_end_to_end(docker_engine, start_agent, tmp_path):
    tag = f"sparkdeck-test/sglang-fake:{docker_engine.session}"  # an image name that says sglang, for detection
    docker_engine.cli("tag", docker_engine.image, tag)
    names = {k: f"sdt-serv-{k}-{uuid.uuid4().hex[:6]}" for k in ("vllm", "sglang", "ollama", "hang", "down", "hostnet")}
    www = {k: tmp_path / k for k in ("vllm", "sglang", "ollama")}
    for d in www.values():
        d.mkdir()
        os.chmod(d, 0o755)
    (www["vllm"] / "metrics").write_text(vllm_text(1000, 500, {0.05: 4}))
    (www["sglang"] / "metrics").write_text(sglang_text(100, 200))
    (www["ollama"] / "api").mkdir()
    (www["ollama"] / "api" / "ps").write_text(json.dumps({"models": [{"name": "llama3.2:1b", "size": 2_019_393_189, "size_vram": 2_019_393_189}]}))

    def label(kind, path="/metrics"):
        return f"{METRICS_LABEL}=" + json.dumps({"kind": kind, "port": "8000/tcp", "path": path})

    httpd = ["httpd", "-f", "-p", "8000", "-h", "/www"]
    try:
        docker_engine.run("-p", "127.0.0.1::8000", "-v", f"{www['vllm']}:/www:ro", "--label", label("vllm"), docker_engine.image, *httpd, name=names["vllm"])
        docker_engine.run("-p", "127.0.0.1::8000", "-v", f"{www['sglang']}:/www:ro", tag, *httpd, name=names["sglang"])  # detected by image
        docker_engine.run(
            "-p", "127.0.0.1::8000", "-v", f"{www['ollama']}:/www:ro", "--label", label("ollama", "/api/ps"), docker_engine.image, *httpd, name=names["ollama"]
        )
        # accepts connections and never answers: must cost its own time-out, never the sampler's
        docker_engine.run("-p", "127.0.0.1::8000", "--label", label("vllm"), docker_engine.image, "sh", "-c", "nc -ll -p 8000 -e sleep 600", name=names["hang"])
        docker_engine.run("-p", "127.0.0.1::8000", "--label", label("vllm"), docker_engine.image, "sleep", "600", name=names["down"])  # nothing listens
        hp = free_port()  # --network host: the server binds the host's loopback, nothing is published
        hostnet = f"{METRICS_LABEL}=" + json.dumps({"kind": "vllm", "port": f"{hp}/tcp", "path": "/metrics"})
        docker_engine.run(
            "--network",
            "host",
            "-v",
            f"{www['vllm']}:/www:ro",
            "--label",
            hostnet,
            docker_engine.image,
            "httpd",
            "-f",
            "-p",
            f"127.0.0.1:{hp}",
            "-h",
            "/www",
            name=names["hostnet"],
        )
        agent = start_agent("--simulate", "gb10", "--interval", "0.2")
        h = agent.headers(agent.read_token)

        def snap():
            return httpx.get(agent.url + "/api/v1/snapshot", headers=h).json()

        def rows():
            return {c["name"]: c for c in snap()["containers"] if c["name"] in names.values()}

        first = wait_for(
            lambda: (lambda r: r if len(r) == 6 and r[names["vllm"]]["serving"] and r[names["vllm"]]["serving"]["requests_running"] == 2 else None)(rows()),
            20,
            "first serving read",
        )
        v = first[names["vllm"]]["serving"]
        assert v["kind"] == "vllm" and v["source"] == "label" and v["kv_cache_usage_percent"] == 42.0 and v["requests_waiting"] == 1
        # a window with traffic: +1000 prompt / +2000 generated tokens, 10 requests with TTFT in (0.05, 0.1]
        (www["vllm"] / "metrics").write_text(vllm_text(2000, 2500, {0.05: 4, 0.1: 10}, running=5, waiting=3, kv=0.87))
        (www["sglang"] / "metrics").write_text(sglang_text(600, 1200))
        r = wait_for(
            lambda: (
                lambda r: (
                    r
                    if (r[names["vllm"]]["serving"]["generation_tokens_per_s"] or 0) > 0 and (r[names["sglang"]]["serving"]["prompt_tokens_per_s"] or 0) > 0
                    else None
                )
            )(rows()),
            20,
            "a window with traffic",
        )
        v = r[names["vllm"]]["serving"]
        print(f"vllm window: prompt {v['prompt_tokens_per_s']} tok/s, generation {v['generation_tokens_per_s']} tok/s, ttft p50 {v['ttft_p50_s']} s")
        assert 150 <= v["prompt_tokens_per_s"] <= 250 and 300 <= v["generation_tokens_per_s"] <= 500  # the deltas over a ~5 s window
        assert v["ttft_p50_s"] == 0.075 and (v["requests_running"], v["requests_waiting"], v["kv_cache_usage_percent"]) == (5, 3, 87.0)
        s = r[names["sglang"]]["serving"]
        assert s["kind"] == "sglang" and s["source"] == "image" and s["requests_running"] == 3 and 70 <= s["prompt_tokens_per_s"] <= 130
        o = r[names["ollama"]]["serving"]
        assert o["kind"] == "ollama" and o["models"] == [{"name": "llama3.2:1b", "size_bytes": 2_019_393_189, "size_vram_bytes": 2_019_393_189}]
        assert "no answer within" in r[names["hang"]]["serving"]["error"], r[names["hang"]]["serving"]
        assert r[names["down"]]["serving"]["error"] and r[names["down"]]["serving"]["requests_running"] is None
        assert r[names["hostnet"]]["serving"]["requests_running"] == 5 and r[names["hostnet"]]["serving"]["error"] is None
        assert all(c["serving"] is None for c in snap()["containers"] if c["name"] not in names.values() and not c["image"].startswith(("vllm", "lmsysorg")))
        Snapshot.model_validate(snap())
        # the hung server never stalls the sampler: frames keep their 0.2 s pace
        s0 = snap()["seq"]
        time.sleep(2.0)
        assert snap()["seq"] - s0 >= 5  # 10 due; a stall behind the 2 s time-out would leave a gap
        m = httpx.get(agent.url + "/metrics", headers=h).text
        assert f'sparkdeck_serving_requests_running{{container="{names["vllm"]}",kind="vllm",model=""}} 5.0' in m
        assert f'sparkdeck_serving_up{{container="{names["hang"]}",kind="vllm",model=""}} 0.0' in m
        assert f'sparkdeck_serving_kv_cache_usage_ratio{{container="{names["vllm"]}",kind="vllm",model=""}} 0.87' in m
        if shutil.which("promtool"):  # the exposition (serving and thermal families included) passes Prometheus' own lint
            lint = subprocess.run(["promtool", "check", "metrics"], input=m, capture_output=True, text=True, timeout=30)
            assert lint.returncode == 0, lint.stdout + lint.stderr
        # a stopped server has no serving figures
        docker_engine.cli("stop", "-t", "0", names["vllm"])
        wait_for(lambda: rows()[names["vllm"]]["serving"] is None, 10, "stopped server: serving null")
    finally:
        docker_engine.cli("rm", "-f", *names.values(), check=False)
        docker_engine.cli("rmi", tag, check=False)
