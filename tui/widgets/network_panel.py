"""Network rates: totals with a sparkline each, and the busiest interfaces."""

from __future__ import annotations

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel
from tui.widgets.spark import spark_text


class NetworkPanel(TextPanel):
    """Shows an AgentClient's network rates (latest snapshot) with their history."""

    DEFAULT_CSS = """
    NetworkPanel > .net--spark { color: $accent; }
    """
    COMPONENT_CLASSES = {"net--spark"}
    TITLE = "Network"

    def build(self, width: int) -> Text:
        cl = self.data
        if cl.latest is None:
            return Text("no data", "dim")
        net = cl.latest["host"]["net"]
        t = Text()
        style = self.get_component_rich_style("net--spark")
        for label, key, value in (("rx", "net.rx", net.get("rx_bytes_s")), ("tx", "net.tx", net.get("tx_bytes_s"))):
            series = cl.history.series(key)
            hi = max([v for v in series if v is not None] or [1.0]) or 1.0
            figures = f" {fmt.rate(value):>12}"
            t.append(label + " ", "dim")
            t.append(spark_text(series, max(4, width - len(figures) - 3), 0.0, hi), style)
            t.append(figures + "\n")
        nics = sorted((net.get("per_nic") or {}).items(), key=lambda kv: -((kv[1].get("rx_bytes_s") or 0) + (kv[1].get("tx_bytes_s") or 0)))
        for name, r in nics[:4]:
            t.append(f"{name[:14]:<15}", "dim")
            t.append(f"rx {fmt.rate(r.get('rx_bytes_s')):>12}  tx {fmt.rate(r.get('tx_bytes_s')):>12}\n")
        t.rstrip()
        return t
