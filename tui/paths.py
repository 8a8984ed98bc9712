"""Where the client keeps its files: $XDG_CONFIG_HOME/sparkdeck (default ~/.config/sparkdeck)."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sparkdeck"
