"""Logging to stderr in a journald-friendly shape, with secrets scrubbed.

Under systemd (JOURNAL_STREAM set) each line starts with a syslog priority prefix
(``<4>``) so journald records the level; elsewhere the level is spelled out.
Anything that looks like a sparkdeck token, a Bearer credential, HF_TOKEN or an
NGC key is masked before it is written, whatever logger produced it.
"""

from __future__ import annotations

import logging
import os
import re
import sys

_SECRET = re.compile(
    r"(sdk_)[A-Za-z0-9_\-]{8,}"
    r"|(bearer\s+)[^\s'\",]+"
    # the name's prefix is bounded and must start a word: an unbounded ``[A-Z_]*`` retried at every
    # position made a 100 KB line of letters (a container's log) take 8 minutes of the event loop
    r"|((?<![A-Za-z0-9_])(?:HF_TOKEN|HUGGING_FACE_HUB_TOKEN|NGC_API_KEY|[A-Z_]{0,64}(?:TOKEN|SECRET|PASSWORD|API_KEY))\s{0,8}[=:]\s{0,8})[^\s'\",]+"
    r"|(nvapi-)[A-Za-z0-9_\-]{8,}"
    r"|(hf_)[A-Za-z0-9]{8,}",
    re.IGNORECASE,
)

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def scrub(text: str) -> str:
    return _SECRET.sub(lambda m: next(g for g in m.groups() if g is not None) + "***", text)


class ScrubbingFormatter(logging.Formatter):
    def __init__(self, journald: bool):
        super().__init__("%(name)s: %(message)s" if journald else "%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        text = scrub(super().format(record))
        if self.journald:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{text}"
        return text


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ScrubbingFormatter(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
