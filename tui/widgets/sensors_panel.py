"""Temperatures, fans and power sensors from the host (hwmon)."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui import format as fmt


class SensorsPanel(Widget):
    DEFAULT_CSS = """
    SensorsPanel { height: auto; border: round $primary; padding: 0 1; }
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.host: dict | None = None
        self.border_title = "Temperatures & fans"

    def show(self, host: dict) -> None:
        self.host = host
        self.refresh(layout=True)

    def render(self) -> Text:
        if self.host is None:
            return Text("no data", "dim")
        t = Text()
        temps, fans, power = self.host.get("temperatures") or [], self.host.get("fans") or [], self.host.get("power") or []
        for s in temps[:12]:
            hot = s.get("high_c") is not None and s["current_c"] >= s["high_c"]
            t.append(f"{s['chip']}/{s['label']}"[:22].ljust(23), "dim")
            t.append(f"{s['current_c']:5.1f} °C", "bold red" if hot else "")
            t.append(f"  high {fmt.num(s.get('high_c'), '°C')}\n" if s.get("high_c") is not None else "\n", "dim")
        if len(temps) > 12:
            t.append(f"+{len(temps) - 12} more sensors\n", "dim")
        for f in fans:
            duty = f" {fmt.pct(f.get('duty_percent'))}" if f.get("duty_percent") is not None else ""
            t.append(f"{f['chip']}/{f['label']}"[:22].ljust(23), "dim")
            t.append(f"{fmt.num(f.get('rpm'), ' rpm')}{duty}\n")
        for p in power:
            t.append(f"{p['chip']}/{p['label']}"[:22].ljust(23), "dim")
            t.append(f"{p['power_w']:.1f} W\n")
        if not (temps or fans or power):
            t.append("no hwmon sensors reported (n/a)", "dim italic")
        t.rstrip()
        return t
