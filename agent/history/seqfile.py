"""The last published seq, written before each frame goes out.

A pwrite into the page cache costs microseconds and survives the agent being
killed (kill -9 does not lose the page cache), so a restarted agent continues at
last + 1: clients never see a seq twice, and their since_seq backfill spans the restart.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent import statefiles


class SeqFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd = statefiles.open_file(self.path, os.O_RDWR)

    def last(self) -> int:
        try:
            raw = os.pread(self._fd, 32, 0).split(b"\n", 1)[0]
            return int(raw) if raw.strip() else 0
        except (OSError, ValueError):
            return 0

    def store(self, seq: int) -> None:
        try:
            os.pwrite(self._fd, b"%020d\n" % seq, 0)
        except OSError:
            pass  # disk trouble: history reports it; the stream goes on

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass
