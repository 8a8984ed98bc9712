"""Cost of one model-server metrics read: parse + summarize a vLLM-sized /metrics body.

    python bench/serving_parse.py

The body imitates vLLM's: its six figures plus 30 other histogram families (vLLM exports
latency, queue, prefill, decode, token-count histograms, ~20 buckets each) for two model names.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.containers.serving import parse_prometheus, summarize, wanted  # noqa: E402

BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0]


def body(scale: int) -> str:
    out = []
    for model in ("Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"):
        lab = f'engine="0",model_name="{model}"'
        out += [f"vllm:num_requests_running{{{lab}}} 3", f"vllm:num_requests_waiting{{{lab}}} 1", f"vllm:kv_cache_usage_perc{{{lab}}} 0.4"]
        out += [f"vllm:prompt_tokens_total{{{lab}}} {1000 * scale}", f"vllm:generation_tokens_total{{{lab}}} {2000 * scale}"]
        for fam in ["vllm:time_to_first_token_seconds"] + [f"vllm:other_{i}_seconds" for i in range(30)]:
            for i, le in enumerate(BUCKETS):
                out.append(f'{fam}_bucket{{{lab},le="{le}"}} {i * scale}')
            out += [f'{fam}_bucket{{{lab},le="+Inf"}} {len(BUCKETS) * scale}', f"{fam}_count{{{lab}}} {len(BUCKETS) * scale}", f"{fam}_sum{{{lab}}} 12.5"]
    return "\n".join(out) + "\n"


a, b = body(1), body(2)
n = 50
for label, names in (("every line", None), ("wanted lines only (what the agent does)", wanted("vllm"))):
    t0 = time.process_time()
    for _ in range(n):
        prev = parse_prometheus(a, names)
        cur = parse_prometheus(b, names)
        s = summarize("vllm", "label", cur, (0.0, prev), 5.0)
    per_read = (time.process_time() - t0) / (2 * n)
    assert s["prompt_tokens_per_s"] == 400.0 and s["ttft_p50_s"] is not None
    print(f"body {len(b) / 1024:.0f} KiB, {b.count(chr(10))} lines, {label}: {per_read * 1000:.2f} ms CPU per read, every 5 s per server")
