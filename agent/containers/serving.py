"""Model-server metrics: which containers are inference servers, and what their metrics say.

A container is a server when its ``sparkdeck.metrics`` label says so (the launcher sets it
from a template's ``metrics = {port, path, kind}``; anyone may set it on their own
containers) or, failing that, when its image repository names a known server. The
server's Prometheus text is parsed with prometheus-client's parser; Ollama has no
Prometheus endpoint, so its ``/api/ps`` JSON (the loaded models) is read instead.

Rates come from counter deltas between two reads and the time-to-first-token median
from the histogram's bucket deltas over the same window (as PromQL's
``histogram_quantile(0.5, rate(..._bucket[5s]))``), so both describe the last window,
not the server's lifetime. A counter that went down (the server restarted) gives null
for that window rather than a negative or lifetime figure.

This module is pure: fetching happens in agent/containers/serving_poll.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

LABEL = "sparkdeck.metrics"
MAX_MODELS = 32  # Ollama models listed per container


@dataclass(frozen=True)
class Kind:
    port: str  # the server's default container port
    path: str
    running: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    kv: tuple[str, ...] = ()  # 0..1 ratios, first name found wins (older servers use older names)
    prompt: tuple[str, ...] = ()  # counters
    generation: tuple[str, ...] = ()
    ttft: str | None = None  # histogram base name


KINDS: dict[str, Kind] = {
    "vllm": Kind(
        "8000/tcp",
        "/metrics",
        running=("vllm:num_requests_running",),
        waiting=("vllm:num_requests_waiting",),
        kv=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        prompt=("vllm:prompt_tokens_total",),
        generation=("vllm:generation_tokens_total",),
        ttft="vllm:time_to_first_token_seconds",
    ),
    "sglang": Kind(
        "30000/tcp",
        "/metrics",  # served with --enable-metrics
        running=("sglang:num_running_reqs",),
        waiting=("sglang:num_queue_reqs",),
        kv=("sglang:token_usage",),
        prompt=("sglang:prompt_tokens_total",),
        generation=("sglang:generation_tokens_total",),
        ttft="sglang:time_to_first_token_seconds",
    ),
    "llama.cpp": Kind(
        "8080/tcp",
        "/metrics",  # served with --metrics; llama.cpp has no time-to-first-token histogram
        running=("llamacpp:requests_processing",),
        waiting=("llamacpp:requests_deferred",),
        kv=("llamacpp:kv_cache_usage_ratio",),
        prompt=("llamacpp:prompt_tokens_total",),
        generation=("llamacpp:tokens_predicted_total",),
    ),
    "trtllm": Kind(
        "8000/tcp",
        "/prometheus/metrics",  # trtllm-serve's /metrics is JSON iteration stats; Prometheus text is here
        running=("trtllm_num_requests_running",),
        waiting=("trtllm_num_requests_waiting",),
        kv=("trtllm_kv_cache_utilization",),
        prompt=("trtllm_prompt_tokens_total",),
        generation=("trtllm_generation_tokens_total",),
        ttft="trtllm_time_to_first_token_seconds",
    ),
    "ollama": Kind("11434/tcp", "/api/ps"),
}

# image repository (tag left out: open-webui's ":ollama" image is not an Ollama server to us) -> kind
_IMAGE_HINTS = (
    ("ollama", "ollama"),
    ("sglang", "sglang"),
    ("vllm", "vllm"),
    ("tensorrt-llm", "trtllm"),
    ("tensorrt_llm", "trtllm"),
    ("trtllm", "trtllm"),
    ("llama.cpp", "llama.cpp"),
    ("llama-cpp", "llama.cpp"),
    ("llamacpp", "llama.cpp"),
)


@dataclass(frozen=True)
class Target:
    kind: str
    host: str
    port: int
    path: str
    source: str  # "label" or "image"


@dataclass(frozen=True)
class Unreachable:
    """A model server whose metrics cannot be read at all (its port is not published)."""

    kind: str
    error: str
    source: str


def _repository(image: str) -> str:
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)
    if ":" in last[-1]:
        repo = repo[: repo.rfind(":")]
    return repo.lower()


def kind_from_image(image: str | None) -> str | None:
    repo = _repository(image or "")
    return next((kind for hint, kind in _IMAGE_HINTS if hint in repo), None)


def label_value(kind: str, port: str, path: str) -> str:
    """The ``sparkdeck.metrics`` label for a template's metrics field."""
    return json.dumps({"kind": kind, "port": port, "path": path}, separators=(",", ":"))


def _published(ports: list[dict[str, Any]], container_port: str) -> tuple[str, int] | None:
    num, _, proto = container_port.partition("/")
    for p in ports:
        if str(p.get("container_port")) == num and p.get("protocol", "tcp") == (proto or "tcp"):
            ip = p.get("host_ip") or "127.0.0.1"
            return ("127.0.0.1" if ip in ("0.0.0.0", "::", "") else ip), int(p["host_port"])
    return None


def target_for(entry: dict[str, Any], host_network: bool = False) -> Target | Unreachable | None:
    """Where to read a running container's metrics: a Target, Unreachable, or None (not a model server).

    host_network: the container shares the host's network (``--network host``, common in NVIDIA's
    Spark playbooks), so its server listens on the host's own port and nothing is published."""
    labels = entry.get("labels") or {}
    ports = entry.get("ports") or []
    if host_network and not ports:
        ports = [
            {"host_ip": "127.0.0.1", "host_port": int(p.split("/")[0]), "container_port": int(p.split("/")[0]), "protocol": "tcp"}
            for p in _declared_ports(entry)
        ]
    raw = labels.get(LABEL)
    if raw:
        try:
            spec = json.loads(raw)
            kind = spec["kind"]
            if kind not in KINDS:  # checked even when port and path are given: wanted() looks it up
                raise KeyError(kind)
            port, path = str(spec.get("port") or KINDS[kind].port), str(spec.get("path") or KINDS[kind].path)
            if not path.startswith("/") or any(c in path for c in " \r\n"):
                raise ValueError(path)
        except (ValueError, KeyError, TypeError, AttributeError):
            return Unreachable("unknown", f'label {LABEL} must be {{"kind": one of {", ".join(KINDS)}, "port": "8000/tcp", "path": "/metrics"}}', "label")
        where = _published(ports, port)
        if where is None:
            return Unreachable(kind, f"port {port} is not published on the host", "label")
        return Target(kind, where[0], where[1], path, "label")
    kind = kind_from_image(entry.get("image"))
    if kind is None:
        return None
    k = KINDS[kind]
    where = _published(ports, k.port)
    tcp = [p for p in ports if p.get("protocol", "tcp") == "tcp"]
    if where is None and len(tcp) == 1:  # a server on a non-default port, published once
        where = _published(tcp, f"{tcp[0]['container_port']}/tcp")
    if where is None:
        return Unreachable(kind, f"port {k.port} is not published on the host; set label {LABEL} to say which port", "image")
    return Target(kind, where[0], where[1], k.path, "image")


def _declared_ports(entry: dict[str, Any]) -> list[str]:
    """The container ports a host-network server may listen on: the label's, else the kind's default."""
    raw = (entry.get("labels") or {}).get(LABEL)
    try:
        spec = json.loads(raw) if raw else None
        if isinstance(spec, dict) and str(spec.get("port") or "").split("/")[0].isdigit():
            return [str(spec["port"])]
        kind = spec["kind"] if isinstance(spec, dict) and spec.get("kind") in KINDS else kind_from_image(entry.get("image"))
    except ValueError:
        return []
    return [KINDS[kind].port] if kind else []


# ---- reading one answer ---------------------------------------------------------------


@dataclass
class Reading:
    """One answer: gauges and counters summed over label sets, histogram buckets by bound."""

    values: dict[str, float]
    buckets: dict[str, dict[float, float]]
    models: list[dict[str, Any]] | None = None


def wanted(kind: str) -> tuple[str, ...]:
    k = KINDS[kind]
    return k.running + k.waiting + k.kv + k.prompt + k.generation + ((k.ttft + "_bucket",) if k.ttft else ())


def parse_prometheus(text: str, names: tuple[str, ...] | None = None) -> Reading:
    """Raises ValueError for text the parser cannot read.

    ``names``: only the sample lines starting with one of these go to the parser. vLLM's full
    /metrics is ~1,400 lines of which ~30 matter, and prometheus-client's parser costs ~35 µs
    a line (bench/serving_parse.py): selecting lines by prefix first makes a read ~20x cheaper.
    The values are still read by the parser; comment lines are dropped (the samples become
    untyped, which changes nothing here: they are read by name)."""
    from prometheus_client.parser import text_string_to_metric_families

    if names:
        text = "\n".join(line for line in text.splitlines() if line.startswith(names)) + "\n"
    values: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if math.isnan(s.value):
                continue
            if s.name.endswith("_bucket") and "le" in s.labels:
                b = buckets.setdefault(s.name[: -len("_bucket")], {})
                le = float(s.labels["le"])
                b[le] = b.get(le, 0.0) + s.value
            else:
                values[s.name] = values.get(s.name, 0.0) + s.value  # one series per model name: summed
    return Reading(values, buckets)


def parse_ollama(text: str) -> Reading:
    data = json.loads(text)
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise ValueError("no models list in /api/ps")
    out = []
    for m in models[:MAX_MODELS]:
        if isinstance(m, dict):
            out.append(
                {"name": str(m.get("name") or m.get("model") or "?")[:200], "size_bytes": _int(m.get("size")), "size_vram_bytes": _int(m.get("size_vram"))}
            )
    return Reading({}, {}, out)


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _first(values: dict[str, float], names: tuple[str, ...]) -> float | None:
    return next((values[n] for n in names if n in values), None)


def quantile(q: float, deltas: dict[float, float]) -> float | None:
    """histogram_quantile over cumulative bucket counts; None with no observations."""
    bounds = sorted(deltas)
    if not bounds or not math.isinf(bounds[-1]):
        return None
    total = deltas[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for b in bounds:
        c = deltas[b]
        if c >= rank:
            if math.isinf(b):
                return prev_bound  # in the open-ended bucket: the highest finite bound is all we know
            if c == prev_count:
                return b
            return prev_bound + (b - prev_bound) * (rank - prev_count) / (c - prev_count)
        prev_bound, prev_count = b, c
    return None


def _rate(now: float | None, before: float | None, dt: float) -> float | None:
    if now is None or before is None or dt <= 0 or now < before:
        return None
    return round((now - before) / dt, 2)


def empty(kind: str, error: str | None, source: str | None = None) -> dict[str, Any]:
    return {
        "kind": kind,
        "source": source,
        "requests_running": None,
        "requests_waiting": None,
        "kv_cache_usage_percent": None,
        "prompt_tokens_per_s": None,
        "generation_tokens_per_s": None,
        "ttft_p50_s": None,
        "models": None,
        "error": error,
    }


def summarize(kind: str, source: str, cur: Reading, prev: tuple[float, Reading] | None, now: float) -> dict[str, Any]:
    """The ``serving`` object from this reading and the one before (None on the first)."""
    k = KINDS[kind]
    out = empty(kind, None, source)
    if kind == "ollama":
        out["models"] = cur.models
        out["requests_running"] = len(cur.models or [])  # loaded models; Ollama does not report requests
        return out
    v = cur.values
    known = k.running + k.waiting + k.kv + k.prompt + k.generation
    if not any(n in v for n in known) and not (k.ttft and k.ttft in cur.buckets):
        out["error"] = f"answered, but with none of the {kind} metric names (is it a {kind} server?)"
        return out
    running, waiting, kv = _first(v, k.running), _first(v, k.waiting), _first(v, k.kv)
    out["requests_running"] = int(running) if running is not None else None
    out["requests_waiting"] = int(waiting) if waiting is not None else None
    out["kv_cache_usage_percent"] = round(kv * 100, 1) if kv is not None else None
    if prev is not None:
        t0, p = prev
        dt = now - t0
        out["prompt_tokens_per_s"] = _rate(_first(v, k.prompt), _first(p.values, k.prompt), dt)
        out["generation_tokens_per_s"] = _rate(_first(v, k.generation), _first(p.values, k.generation), dt)
        if k.ttft and k.ttft in cur.buckets and k.ttft in p.buckets:
            a, b = cur.buckets[k.ttft], p.buckets[k.ttft]
            deltas = {le: a[le] - b.get(le, 0.0) for le in a}
            if all(d >= 0 for d in deltas.values()):
                q = quantile(0.5, deltas)
                out["ttft_p50_s"] = round(q, 4) if q is not None else None
    return out
