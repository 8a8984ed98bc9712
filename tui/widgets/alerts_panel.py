"""Active alerts for one machine (thresholds from client.toml [alerts])."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui.alerts import Alert


class AlertsPanel(Widget):
    DEFAULT_CSS = """
    AlertsPanel { height: auto; border: round $error; padding: 0 1; display: none; }
    AlertsPanel.-active { display: block; }
    AlertsPanel > .alert--critical { color: $error; text-style: bold; }
    AlertsPanel > .alert--warning { color: $warning; }
    """
    COMPONENT_CLASSES = {"alert--critical", "alert--warning"}

    def __init__(self, **kw):
        super().__init__(**kw)
        self.alerts: list[Alert] = []
        self.border_title = "Alerts"

    def show(self, alerts: list[Alert]) -> None:
        self.alerts = alerts
        self.set_class(bool(alerts), "-active")
        self.refresh(layout=True)

    def render(self) -> Text:
        t = Text()
        for a in self.alerts:
            t.append(f"{'‼' if a.severity == 'critical' else '!'} {a.message}\n", self.get_component_rich_style(f"alert--{a.severity}"))
        t.rstrip()
        return t
