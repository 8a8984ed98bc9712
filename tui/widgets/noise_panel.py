"""Noise proxy: index 0..100, its source, and the inputs it was computed from."""

from __future__ import annotations

import json

from rich.text import Text
from textual.widget import Widget

from tui import format as fmt


class NoisePanel(Widget):
    DEFAULT_CSS = """
    NoisePanel { height: auto; border: round $primary; padding: 0 1; }
    NoisePanel > .noise--bar { color: $accent; }
    """
    COMPONENT_CLASSES = {"noise--bar"}

    def __init__(self, **kw):
        super().__init__(**kw)
        self.noise: dict | None = None
        self.border_title = "Noise"

    def show(self, noise: dict) -> None:
        self.noise = noise
        self.refresh(layout=True)

    def render(self) -> Text:
        n = self.noise
        if n is None:
            return Text("no data", "dim")
        t = Text()
        idx = n.get("index")
        t.append(f"{fmt.num(idx, '', 0)}/100 ", "bold")
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
