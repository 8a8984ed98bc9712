"""Append-only audit log of control actions: one JSON object per line in the state dir.

Each line is written with a single O_APPEND write, so concurrent writers never
interleave and nothing earlier is rewritten. Entries never carry secret values.
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from agent import statefiles


class AuditLog:
    def __init__(self, path: Path):
        self.path = path

    def append(self, *, token: str, client: str, action: str, target: str, result: str, detail: str | None = None) -> dict[str, Any]:
        entry = {"time": round(time.time(), 3), "token": token, "client": client, "action": action, "target": target, "result": result}
        if detail:
            entry["detail"] = detail
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        fd = statefiles.open_file(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return entry

    def tail(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` entries, oldest first."""
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                lines = deque(f, maxlen=limit)
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn line from a crash mid-write; skip it rather than fail the read
        return out
