"""The numeric series kept in history, flattened from a snapshot frame."""

from __future__ import annotations

import re
from typing import Any

# gpu<N>.<field> plus host-wide series; names double as the /api/v1/history vocabulary
METRIC_RE = re.compile(
    r"^(cpu\.percent|memory\.used_bytes|memory\.percent|memory\.(available|models_available|reclaimable|shmem|gpu_process)_bytes|memory\.psi_(some|full)_avg10|swap\.used_bytes|noise\.index|net\.(rx|tx)_bytes_s|disk\.(read|write)_bytes_s|gpu\d{1,2}\.(utilization_percent|power_w|temperature_c|memory_used_bytes|sm_clock_mhz))$"
)


def flatten(frame: dict[str, Any]) -> dict[str, float]:
    host = frame["host"]
    mem = host["memory"]
    out: dict[str, float | None] = {
        "cpu.percent": host["cpu"]["percent"],
        "memory.used_bytes": host["memory"]["used_bytes"],
        "memory.percent": host["memory"]["percent"],
        "memory.available_bytes": mem["available_bytes"],
        "memory.models_available_bytes": mem.get("models_available_bytes"),
        "memory.reclaimable_bytes": mem.get("reclaimable_bytes"),
        "memory.shmem_bytes": mem.get("shmem_bytes"),
        "memory.gpu_process_bytes": mem.get("gpu_process_bytes"),
        "memory.psi_some_avg10": (mem.get("pressure") or {}).get("some_avg10"),
        "memory.psi_full_avg10": (mem.get("pressure") or {}).get("full_avg10"),
        "swap.used_bytes": host["swap"]["used_bytes"],
        "noise.index": frame["noise"]["index"],
        "net.rx_bytes_s": host["net"]["rx_bytes_s"],
        "net.tx_bytes_s": host["net"]["tx_bytes_s"],
        "disk.read_bytes_s": host["disk_io"]["read_bytes_s"],
        "disk.write_bytes_s": host["disk_io"]["write_bytes_s"],
    }
    for g in frame["gpus"]:
        if g.get("status") != "ok":
            continue
        p = f"gpu{g['index']}."
        out[p + "utilization_percent"] = g.get("utilization_gpu_percent")
        out[p + "power_w"] = g.get("power_w")
        out[p + "temperature_c"] = g.get("temperature_c")
        out[p + "memory_used_bytes"] = (g.get("memory") or {}).get("used_bytes")
        out[p + "sm_clock_mhz"] = g.get("sm_clock_mhz")
    return {k: float(v) for k, v in out.items() if v is not None}
