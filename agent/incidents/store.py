"""The run marker and the kept incidents, both small JSON files in the state dir (0600).

run.json        {"state": "running"|"stopped", "boot_id", "started", "pid", "agent_version"}:
                "running" is written at start, "stopped" at the end of a clean stop. A run
                that finds "running" knows the previous one ended some other way.
incidents.json  {"incidents": [...]}, newest last, at most KEEP of them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from agent.protocol import Incident
from agent.statefiles import write_file

log = logging.getLogger("sparkdeck.incidents")

KEEP = 20  # ~35 KB each (1 GPU, 120 samples at 1 Hz); at most ~2 MB (240 samples, 2 GPUs)
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
# Test-only: where the boot id is read from (tests change it to play a host reboot).
BOOT_ID_ENV = "SPARKDECK_BOOT_ID_FILE"


def boot_id() -> str | None:
    try:
        return Path(os.environ.get(BOOT_ID_ENV) or BOOT_ID_FILE).read_text().strip() or None
    except OSError:
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        # a damaged file must not stop the agent: say so, and start over
        log.warning("%s is unreadable (%s); ignoring it", path, exc)
        return None


class RunMarker:
    def __init__(self, path: Path):
        self.path = path

    def previous(self) -> dict[str, Any] | None:
        data = _read_json(self.path)
        return data if isinstance(data, dict) else None

    def write(self, record: dict[str, Any]) -> None:
        try:
            write_file(self.path, json.dumps(record).encode())
        except OSError as exc:
            log.warning("cannot write %s: %s (an unclean end of this run may go unnoticed)", self.path, exc)


def _valid(item: Any) -> bool:
    """A kept incident must still match the schema, or GET /api/v1/incidents could not answer."""
    try:
        Incident.model_validate(item)
        return True
    except ValueError:
        return False


class IncidentLog:
    def __init__(self, path: Path, keep: int = KEEP):
        self.path = path
        self.keep = keep
        data = _read_json(path)
        items = data.get("incidents") if isinstance(data, dict) else None
        self.items: list[dict[str, Any]] = [i for i in items if _valid(i)][-keep:] if isinstance(items, list) else []

    def next_id(self) -> int:
        return max((int(i.get("id", 0)) for i in self.items), default=0) + 1

    def add(self, incident: dict[str, Any]) -> None:
        self.items = (self.items + [incident])[-self.keep :]
        try:
            write_file(self.path, json.dumps({"incidents": self.items}, separators=(",", ":")).encode())
        except OSError as exc:
            log.warning("cannot write %s: %s (the incident is kept in memory until the agent stops)", self.path, exc)

    def newest_first(self) -> list[dict[str, Any]]:
        return self.items[::-1]
