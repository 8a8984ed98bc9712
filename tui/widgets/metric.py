"""One labelled value; a field the machine cannot report shows "n/a" with the reason as tooltip (and on `a`)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.format import NA


class Metric(Static):
    DEFAULT_CSS = """
    Metric { width: 100%; height: 1; padding: 0 2 0 0; }
    Metric.-na { color: $text-muted; }
    Metric:focus { background: $accent 30%; }
    """

    def __init__(self, label: str, **kw):
        super().__init__(**kw)
        self.label = label

    def show(self, value: str | None, na_reason: str | None = None) -> None:
        """``value`` None -> "n/a" (tooltip: ``na_reason``); never renders a made-up 0."""
        if getattr(self, "_shown", None) == (value, na_reason):
            return  # unchanged: no restyle, no repaint
        self._shown = (value, na_reason)
        na = value is None or value == NA
        self.set_class(na, "-na")
        self.can_focus = na  # `tab` reaches the n/a fields; `a` then says why (the tooltip needs a mouse)
        self.tooltip = f"{self.label}: not available on this machine — {na_reason or 'not reported'}" if na else None
        text = Text.assemble((f"{self.label} ", "dim"), (NA if na or value is None else value, "italic" if na else "bold"))
        self.update(text, layout=False)  # fixed size: repaint only
