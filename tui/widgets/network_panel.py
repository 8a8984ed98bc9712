"""Network rates: totals and the busiest interfaces (their history is charted in the History panel)."""

from __future__ import annotations

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel


class NetworkPanel(TextPanel):
    """Shows an AgentClient's network rates (latest snapshot)."""

    TITLE = "Network"

    def build(self, width: int) -> Text:
        cl = self.data
        if cl.latest is None:
            return Text("no data", "dim")
        net = cl.latest["host"]["net"]
        t = Text()
        t.append(f"{'total':<15}", "dim")
        t.append(f"rx {fmt.rate(net.get('rx_bytes_s')):>12}  tx {fmt.rate(net.get('tx_bytes_s')):>12}\n", "bold")
        nics = sorted((net.get("per_nic") or {}).items(), key=lambda kv: -((kv[1].get("rx_bytes_s") or 0) + (kv[1].get("tx_bytes_s") or 0)))
        for name, r in nics[:4]:
            t.append(f"{name[:14]:<15}", "dim")
            t.append(f"rx {fmt.rate(r.get('rx_bytes_s')):>12}  tx {fmt.rate(r.get('tx_bytes_s')):>12}\n")
        t.rstrip()
        return t
