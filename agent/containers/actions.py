"""Container actions (start, stop, restart, remove) against the engine, with input checks."""

from __future__ import annotations

import re
from typing import Any

from agent.containers.engine import Engine
from agent.containers.tracker import ContainerTracker

# Docker's own rule for names, and hex ids; anything else (slashes, dots first, spaces) is refused
_REF = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
ACTIONS = ("start", "stop", "restart", "remove")


class BadReference(ValueError):
    pass


class Refused(Exception):
    """The action makes no sense in the container's current state (409)."""


def check_ref(id_or_name: str) -> str:
    if not _REF.fullmatch(id_or_name or ""):
        raise BadReference("a container is named by its id or its name: letters, digits, '_', '.', '-' (max 128), starting with a letter or digit")
    return id_or_name


async def run_action(engine: Engine, tracker: ContainerTracker, ref: str, action: str, *, timeout_s: int | None = None, force: bool = False) -> dict[str, Any]:
    """Do it and answer with the container's new state; raises BadReference, Refused or EngineError."""
    check_ref(ref)
    info = await engine.call("GET", f"containers/{ref}/json")
    cid, running = info["Id"], bool((info.get("State") or {}).get("Running"))
    wait = {"timeout_s": timeout_s + 30} if timeout_s is not None else {}  # the HTTP call outlives the grace period
    params = {"t": str(timeout_s)} if timeout_s is not None else None
    if action == "start":
        await engine.call("POST", f"containers/{cid}/start")
    elif action == "stop":
        tracker.note_stop_request(cid)  # asked for: its end is no exit to notify
        await engine.call("POST", f"containers/{cid}/stop", params=params, timeout_s=wait.get("timeout_s", 60))
    elif action == "restart":
        await engine.call("POST", f"containers/{cid}/restart", params=params, timeout_s=wait.get("timeout_s", 60))
    elif action == "remove":
        if running and not force:
            raise Refused("the container is running; stop it first, or pass force=true")
        if running:
            tracker.note_stop_request(cid)
        await engine.call("DELETE", f"containers/{cid}", params={"force": "1" if force else "0"})
        tracker.forget(cid)
        return _removed(info)
    else:
        raise BadReference(f"unknown action {action!r}")
    entry = await tracker.refresh(cid, new_pid=action in ("start", "restart"))  # the answer and the next frame show the new state
    if entry is None:  # removed meanwhile (e.g. --rm on stop)
        return _removed(info)
    return tracker.detail(cid) or entry


def _removed(info: dict[str, Any]) -> dict[str, Any]:
    return {"id": info["Id"][:12], "full_id": info["Id"], "name": info.get("Name", "").lstrip("/"), "state": "removed"}
