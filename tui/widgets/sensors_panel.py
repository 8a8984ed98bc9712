"""Temperatures, fans and power sensors from the host (hwmon), and the kernel's thermal zones."""

from __future__ import annotations

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel


class SensorsPanel(TextPanel):
    """Shows ``host`` temperatures, fans and power sensors."""

    TITLE = "Temperatures & fans"

    def build(self, width: int) -> Text:
        host = self.data
        t = Text()
        temps, fans, power = host.get("temperatures") or [], host.get("fans") or [], host.get("power") or []
        for s in temps[:12]:
            hot = s.get("high_c") is not None and s["current_c"] >= s["high_c"]
            t.append(f"{s['chip']}/{s['label']}"[:22].ljust(23), "dim")
            t.append(f"{s['current_c']:5.1f} °C", f"bold {self.app.current_theme.error}" if hot else "")
            t.append(f"  high {fmt.num(s.get('high_c'), '°C')}\n" if s.get("high_c") is not None else "\n", "dim")
        if len(temps) > 12:
            t.append(f"+{len(temps) - 12} more sensors\n", "dim")
        zones = host.get("thermal_zones") or []
        for z in zones[:8]:
            crit = next((tp["temp_c"] for tp in z.get("trips") or [] if tp.get("type") == "critical" and tp.get("temp_c") is not None), None)
            near = z.get("temp_c") is not None and crit is not None and z["temp_c"] >= crit - 10  # within 10 °C of power-off
            t.append(f"zone/{z['type']}"[:22].ljust(23), "dim")
            t.append(f"{z['temp_c']:5.1f} °C" if z.get("temp_c") is not None else "  n/a   ", f"bold {self.app.current_theme.error}" if near else "")
            t.append(f"  crit {crit:.0f} °C\n" if crit is not None else "\n", "dim")
        if len(zones) > 8:
            t.append(f"+{len(zones) - 8} more zones\n", "dim")
        for f in fans:
            duty = f" {fmt.pct(f.get('duty_percent'))}" if f.get("duty_percent") is not None else ""
            t.append(f"{f['chip']}/{f['label']}"[:22].ljust(23), "dim")
            t.append(f"{fmt.num(f.get('rpm'), ' rpm')}{duty}\n")
        for p in power:
            t.append(f"{p['chip']}/{p['label']}"[:22].ljust(23), "dim")
            t.append(f"{p['power_w']:.1f} W\n")
        if not (temps or fans or power or zones):
            t.append("no hwmon sensors reported (n/a)", "dim italic")
        t.rstrip()
        return t
