"""Append-only audit log of control actions: one JSON object per line in the state dir.

Each line is written with a single O_APPEND write, so concurrent writers never
interleave and nothing earlier is rewritten. Entries never carry secret values.
Each value is cut to MAX_VALUE_CHARS (a refused launch with a 1 MB param must not
add 1 MB a request), and the file is rotated by size: audit.log, then .1 … .KEEP.
Reading the tail reads blocks from the end, never the whole file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from agent import statefiles

MAX_VALUE_CHARS = 256
KEEP = 3  # rotated files kept besides audit.log
_BLOCK = 64 * 1024


def clip(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``value`` cut to ``limit`` characters, marked with how much was left out."""
    return value if len(value) <= limit else f"{value[:limit]}…[truncated {len(value) - limit} chars]"


def _tail_lines(path: Path, limit: int) -> list[bytes]:
    """The last ``limit`` non-empty lines of ``path``, oldest first, read backwards in blocks."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the `with f:` below; the try covers only the open
    except FileNotFoundError:
        return []
    with f:
        pos = f.seek(0, os.SEEK_END)
        blocks: list[bytes] = []
        newlines = 0
        while pos > 0 and newlines <= limit:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            newlines += block.count(b"\n")
            blocks.append(block)
    lines = b"".join(reversed(blocks)).split(b"\n")
    if pos > 0:
        lines = lines[1:]  # the first is the end of a line that started before what we read
    return [line for line in lines if line.strip()][-limit:]


class AuditLog:
    def __init__(self, path: Path, max_bytes: int = 4 * 1024 * 1024):
        self.path = path
        self.max_bytes = max_bytes

    def _rotated(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}")

    def _rotate_if_full(self, adding: int) -> None:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size == 0 or size + adding <= self.max_bytes:
            return
        for i in range(KEEP - 1, 0, -1):  # .2 -> .3, .1 -> .2: the oldest falls off
            if self._rotated(i).exists():
                os.replace(self._rotated(i), self._rotated(i + 1))
        os.replace(self.path, self._rotated(1))

    def append(self, *, token: str, client: str, action: str, target: str, result: str, detail: str | None = None) -> dict[str, Any]:
        entry = {
            "time": round(time.time(), 3),
            "token": clip(token),
            "client": clip(client),
            "action": clip(action),
            "target": clip(target),
            "result": clip(result),
        }
        if detail:
            entry["detail"] = clip(detail)
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        self._rotate_if_full(len(line))
        fd = statefiles.open_file(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return entry

    def tail(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` entries, oldest first (across the rotated files when needed)."""
        lines: list[bytes] = []
        for path in [self.path, *(self._rotated(i) for i in range(1, KEEP + 1))]:
            if len(lines) >= limit:
                break
            lines = _tail_lines(path, limit - len(lines)) + lines
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn line from a crash mid-write; skip it rather than fail the read
        return out
