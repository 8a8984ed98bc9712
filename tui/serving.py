"""One-line summaries of a container's model-server figures (the snapshot's ``serving``)."""

from __future__ import annotations

from typing import Any

from tui import format as fmt


def _n(v: float | None) -> str:
    return "n/a" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.1f}")


def short(serving: dict[str, Any] | None) -> str:
    """For a table cell: generated tok/s, running/waiting, KV % — or that the read failed."""
    if not serving:
        return ""
    if serving.get("error"):
        return "metrics ✗"
    if serving.get("kind") == "ollama":
        return f"{len(serving.get('models') or [])} loaded"
    # compact, for 80 columns: "404 tok/s 5r/3w KV 87%" (running / waiting requests); the detail line spells it out
    parts = [f"{_n(serving.get('generation_tokens_per_s'))} tok/s"]
    if serving.get("requests_running") is not None:
        parts.append(f"{serving['requests_running']}r/{serving.get('requests_waiting') if serving.get('requests_waiting') is not None else '?'}w")
    if serving.get("kv_cache_usage_percent") is not None:
        parts.append(f"KV {fmt.pct(serving['kv_cache_usage_percent'])}")
    return " ".join(parts)


def full(name: str, serving: dict[str, Any] | None) -> str:
    """For a detail line (plain text, the caller escapes it)."""
    if not serving:
        return ""
    head = f"{name} ({serving.get('kind')})"
    if serving.get("error"):
        return f"{head}: metrics unavailable: {serving['error']}"
    if serving.get("kind") == "ollama":
        models = serving.get("models") or []
        listed = ", ".join(f"{m['name']} {fmt.size(m.get('size_vram_bytes'))} in VRAM" for m in models[:4]) or "no model loaded"
        return f"{head}: {listed}"
    ttft = serving.get("ttft_p50_s")
    return (
        f"{head}: {_n(serving.get('generation_tokens_per_s'))} tok/s generated, {_n(serving.get('prompt_tokens_per_s'))} tok/s prompt · "
        f"{serving.get('requests_running') if serving.get('requests_running') is not None else 'n/a'} running, "
        f"{serving.get('requests_waiting') if serving.get('requests_waiting') is not None else 'n/a'} waiting · "
        f"KV cache {fmt.pct(serving.get('kv_cache_usage_percent'))} · TTFT p50 {'n/a' if ttft is None else f'{ttft * 1000:.0f} ms'}"
    )
