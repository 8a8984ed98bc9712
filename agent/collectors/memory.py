"""The memory picture: what is free, what the kernel could free, and what is left for models.

One read of /proc/meminfo and one of /proc/pressure/memory per call, no psutil (about 30 µs
per read, ~115 µs for the whole picture, on a busy 2-core VM). ``models_available`` is the
one formula everything that asks "does it fit?" uses: the snapshot, the launch fit check and
the memory guard (which reads MemAvailable on its own at a faster cadence and calls it with
the same reserve).

What is counted as reclaimable, and why (README "What the numbers mean"):

- ``Active(file) + Inactive(file)``: the page-cache LRU lists, which the kernel can drop or
  write back. Shmem (tmpfs, /dev/shm, shared anonymous memory) is part of ``Cached`` but its
  pages live on the *anon* LRU lists, swap-backed: without swap (the Spark ships none) they
  cannot be reclaimed at all, so ``Cached`` would overstate it by exactly ``Shmem``.
  Mlocked/unevictable file pages are on neither list, so they are left out too.
- ``+ SReclaimable``: slab caches (dentries, inodes) the kernel shrinks under pressure.

Where a kernel lacks the LRU fields, ``Cached − Shmem`` stands in for them.
"""

from __future__ import annotations

from typing import Any, TypedDict

from agent.procfs import line_value, read_bytes

GIB = 1024**3

MEMINFO_FIELDS = (
    "MemTotal",
    "MemFree",
    "MemAvailable",
    "Cached",
    "Active(file)",
    "Inactive(file)",
    "Shmem",
    "SReclaimable",
    "SwapTotal",
    "SwapFree",
)


class Pressure(TypedDict):
    some_avg10: float
    full_avg10: float


def models_available(available_bytes: int, reserve_bytes: int) -> int:
    """What a model may still take: MemAvailable less the safety reserve. May be negative
    (the reserve is already eaten into). The one formula: the launch check and the guard call it."""
    return available_bytes - reserve_bytes


def held_bytes(row: dict[str, Any]) -> tuple[int, int]:
    """How much a container row holds, for ranking: GPU memory first, then RSS (the fit check's
    'holding the most' and the guard's stop-largest rank the same way)."""
    return (row.get("gpu_memory_bytes") or 0, row.get("memory_bytes") or 0)


def reserve_bytes(reserve_gib: float) -> int:
    return int(reserve_gib * GIB)


def parse_meminfo(text: bytes | None, keys: tuple[str, ...] = MEMINFO_FIELDS) -> dict[str, int]:
    """The given /proc/meminfo fields in bytes (absent ones left out); {} for None.

    Looked up by key rather than parsing all ~55 lines."""
    out = {}
    for key in keys:
        value = (line_value(text, key.encode() + b":") or b"").split()
        if value and value[0].isdigit():
            out[key] = int(value[0]) * (1024 if value[1:] == [b"kB"] else 1)
    return out


def reclaimable(m: dict[str, int]) -> int | None:
    """Page cache the kernel can drop (without Shmem) plus reclaimable slab; None if unknown."""
    if "Active(file)" in m and "Inactive(file)" in m:
        cache = m["Active(file)"] + m["Inactive(file)"]
    elif "Cached" in m and "Shmem" in m:
        cache = max(m["Cached"] - m["Shmem"], 0)
    else:
        return None
    return cache + m.get("SReclaimable", 0)


def parse_pressure(text: bytes | None) -> Pressure | None:
    """``some``/``full`` avg10 (percent of time stalled) from /proc/pressure/memory; None without PSI."""
    got: dict[str, float] = {}
    for kind in ("some", "full"):
        rest = line_value(text, kind.encode() + b" ")
        if rest is None:
            return None
        for item in rest.split():
            if item.startswith(b"avg10="):
                try:
                    got[kind] = float(item[6:])
                except ValueError:
                    return None
    if len(got) != 2:
        return None
    return {"some_avg10": got["some"], "full_avg10": got["full"]}


def read_pressure(proc_root: str = "/proc") -> Pressure | None:
    # a kernel built without PSI has no file; one booted with psi=0 answers EOPNOTSUPP (None here too)
    return parse_pressure(read_bytes(f"{proc_root}/pressure/memory"))


def picture(m: dict[str, int], pressure: Pressure | None, reserve: int) -> dict[str, Any] | None:
    """The ``host.memory`` fields from parsed meminfo (gpu_process_bytes is added by the sampler,
    which has the GPUs); None when MemTotal/MemAvailable are missing."""
    if "MemTotal" not in m or "MemAvailable" not in m:
        return None
    total, available = m["MemTotal"], m["MemAvailable"]
    return {
        "total_bytes": total,
        "available_bytes": available,
        "used_bytes": total - available,
        "percent": round((total - available) * 100 / total, 1) if total else 0.0,
        "free_bytes": m.get("MemFree"),
        "reclaimable_bytes": reclaimable(m),
        "shmem_bytes": m.get("Shmem"),
        "gpu_process_bytes": None,
        "reserve_bytes": reserve,
        "models_available_bytes": models_available(available, reserve),
        "pressure": pressure,
    }


def read_memory(proc_root: str = "/proc", reserve: int = 0) -> dict[str, Any] | None:
    """A fresh memory picture (the launch check reads this, not the last 1 s sample)."""
    return picture(parse_meminfo(read_bytes(f"{proc_root}/meminfo")), read_pressure(proc_root), reserve)


def gpu_process_bytes(gpus: list[dict[str, Any]]) -> int | None:
    """Sum of NVML's per-process used memory over GPUs whose memory is unified (it is then system
    RAM); None where no GPU is unified or none of them lists its processes."""
    total, known = 0, False
    for g in gpus:
        if g.get("status") != "ok" or not (g.get("memory") or {}).get("unified"):
            continue
        procs = g.get("processes")
        if procs is None:
            continue
        known = True
        total += sum(p.get("used_memory_bytes") or 0 for p in procs)
    return total if known else None


def is_unified(gpus: list[dict[str, Any]]) -> bool:
    return any((g.get("memory") or {}).get("unified") for g in gpus)
