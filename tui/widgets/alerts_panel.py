"""Active alerts for one machine (thresholds from client.toml [alerts])."""

from __future__ import annotations

from rich.text import Text

from tui.alerts import Alert
from tui.widgets.panel import TextPanel


class AlertsPanel(TextPanel):
    """Shows a list of Alert; hidden while there is none."""

    DEFAULT_CSS = """
    AlertsPanel { border: round $error; display: none; }
    AlertsPanel.-active { display: block; }
    AlertsPanel > .alert--critical { color: $error; text-style: bold; }
    AlertsPanel > .alert--warning { color: $warning; }
    """
    COMPONENT_CLASSES = {"alert--critical", "alert--warning"}
    TITLE = "Alerts"

    def show(self, data: list[Alert]) -> None:
        self.set_class(bool(data), "-active")
        super().show(data)

    def build(self, width: int) -> Text:
        t = Text()
        for a in self.data:
            t.append(f"{'‼' if a.severity == 'critical' else '!'} {a.message}\n", self.get_component_rich_style(f"alert--{a.severity}"))
        t.rstrip()
        return t
