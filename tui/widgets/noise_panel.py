"""Noise proxy: index 0..100, its source, and the inputs it was computed from."""

from __future__ import annotations

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel

UNITS = (("_w", " W"), ("_c", " °C"), ("_rpm", " rpm"), ("_percent", "%"))


def input_words(key: str, value: object) -> str:
    """One noise input as words and numbers: "GPU power 55 W", "power ratio 39%", "weights: power 0.6, temp 0.4"."""
    name, unit = key, ""
    for suffix, words in UNITS:
        if key.endswith(suffix):
            name, unit = key[: -len(suffix)], words
    label = name.replace("_", " ").replace("gpu", "GPU")
    if isinstance(value, dict):
        return f"{label}: " + ", ".join(input_words(str(k), v) for k, v in value.items())
    if isinstance(value, float) and name.endswith("ratio"):
        return f"{label} {value * 100:.0f}%"
    if isinstance(value, float):
        return f"{label} {value:g}{unit}"
    return f"{label} {value}{unit}"


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
        t.append("from " + (", ".join(input_words(k, v) for k, v in (n.get("inputs") or {}).items()) or "no inputs"), "dim")
        return t
