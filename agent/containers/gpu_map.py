"""Which container a process belongs to, from /proc/PID/cgroup; GPU memory per container.

Line formats handled (``hierarchy-ID:controllers:path``):
  cgroup v2, systemd driver   0::/system.slice/docker-<id>.scope
  cgroup v2, cgroupfs driver  0::/docker/<id>
  cgroup v1                   4:memory:/docker/<id>   or   .../docker-<id>.scope
  Podman                      0::/machine.slice/libpod-<id>.scope/container
Podman's monitor (``libpod-conmon-<id>.scope``) is not the container and is not
matched. With Docker-in-Docker the innermost id wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_ID = r"([0-9a-f]{64})"
_CONTAINER_IN_PATH = re.compile(rf"(?:/docker-|/libpod-){_ID}\.scope|/docker/{_ID}(?=/|$)")


def container_id_from_cgroup(text: str) -> str | None:
    """The container id in the contents of a /proc/PID/cgroup file, or None for a host process."""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        matches = _CONTAINER_IN_PATH.findall(parts[2])
        if matches:
            a, b = matches[-1]
            return a or b
    return None


def container_of_pid(pid: int, proc_root: str = "/proc") -> str | None:
    # procfs reads are served from kernel memory and never wait on a disk
    try:
        with open(f"{proc_root}/{int(pid)}/cgroup", encoding="ascii", errors="replace") as f:
            return container_id_from_cgroup(f.read())
    except (OSError, ValueError):
        return None


def gpu_memory_by_container(gpus: Iterable[dict[str, Any]], proc_root: str = "/proc") -> tuple[dict[str, int | None], bool]:
    """({container id: bytes}, complete). A container with a process whose memory NVML cannot
    tell (None) maps to None, never to a made-up figure; complete is False when some GPU could
    not list its processes, so a container with none of them listed is unknown, not 0."""
    totals: dict[str, int | None] = {}
    complete = True
    for gpu in gpus:
        procs = gpu.get("processes")
        if procs is None:
            complete = False
            continue
        for proc in procs:
            cid = container_of_pid(proc["pid"], proc_root)
            if cid is None:
                continue
            used = proc.get("used_memory_bytes")
            so_far = totals.get(cid, 0)
            totals[cid] = None if used is None or so_far is None else so_far + int(used)
    return totals, complete
