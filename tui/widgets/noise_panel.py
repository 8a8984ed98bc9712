"""Noise proxy: index 0..100, its source, and the inputs it was computed from."""

from __future__ import annotations

import json

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel


class NoisePanel(TextPanel):
    """Shows the snapshot's ``noise``."""

    DEFAULT_CSS = """
    NoisePanel > .noise--bar { color: $accent; }
    """
    COMPONENT_CLASSES = {"noise--bar"}
    TITLE = "Noise"

    def build(self, width: int) -> Text:
        n = self.data
        t = Text()
        idx = n.get("index")
        t.append(f"{fmt.num(idx, '', 0)}/100 " if idx is not None else "n/a ", "bold")
        t.append(fmt.bar(None if idx is None else idx / 100, 12), self.get_component_rich_style("noise--bar"))
        t.append(f"  source: {n.get('source', 'none')}")
        dba = n.get("dba_estimate")
        t.append(f"  ~{dba:.0f} dBA\n" if dba is not None else "  dBA n/a (uncalibrated)\n", "dim")
        parts = []
        for key, value in (n.get("inputs") or {}).items():
            if isinstance(value, float):
                value = f"{value:g}"
            elif isinstance(value, dict):
                value = json.dumps(value, separators=(",", ":"))
            parts.append(f"{key}={value}")
        t.append("inputs: " + ("  ".join(parts) or "none"), "dim")
        return t
