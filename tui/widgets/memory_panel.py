"""Memory as one split bar (GPU processes / other used / reclaimable / shm / free), what is left
for models, pressure, and swap; on a unified-memory machine (GB10) says the GPU shares it."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from tui import format as fmt
from tui.widgets.panel import TextPanel

# (key, legend label, component class); the bar is drawn in this order, left to right
SEGMENTS = (
    ("gpu", "GPU procs", "mem--gpu"),
    ("other", "other used", "mem--other"),
    ("cache", "reclaimable", "mem--cache"),
    ("shm", "shm", "mem--shm"),
    ("free", "free", "mem--free"),
)


def segments(mem: dict[str, Any]) -> dict[str, int] | None:
    """Bytes per bar segment; None for an agent that sends only used/available."""
    if mem.get("free_bytes") is None or mem.get("reclaimable_bytes") is None:
        return None
    gpu = mem.get("gpu_process_bytes") or 0
    shm = mem.get("shmem_bytes") or 0
    cache, free = mem["reclaimable_bytes"], mem["free_bytes"]
    other = max(mem["total_bytes"] - free - cache - shm - gpu, 0)
    return {"gpu": gpu, "other": other, "cache": cache, "shm": shm, "free": free}


def cells(parts: dict[str, int], width: int) -> dict[str, int]:
    """Cells per segment summing to exactly ``width`` (largest remainder), a non-empty segment at least 1."""
    total = sum(parts.values()) or 1
    exact = {k: v * width / total for k, v in parts.items()}
    out = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - out[k], reverse=True)[: width - sum(out.values())]:
        out[k] += 1
    for k, v in parts.items():  # a thin but real segment stays visible, taken from the widest
        if v and not out[k]:
            widest = max(out, key=lambda j: out[j])
            if out[widest] > 1:
                out[widest] -= 1
                out[k] = 1
    return out


def for_models_text(mem: dict[str, Any]) -> str | None:
    avail = mem.get("models_available_bytes")
    return None if avail is None else fmt.size(avail)


def pressure_text(mem: dict[str, Any]) -> str:
    p = mem.get("pressure")
    if not p:
        return "pressure n/a (no PSI)"
    return f"pressure some {p['some_avg10']:.1f}% full {p['full_avg10']:.1f}%"


class MemoryPanel(TextPanel):
    """Shows a whole snapshot's ``host.memory`` and ``host.swap`` (and whether the GPU shares it)."""

    DEFAULT_CSS = """
    MemoryPanel > .mem--bar { color: $accent; }
    MemoryPanel > .mem--gpu { color: $secondary-lighten-2; }
    MemoryPanel > .mem--other { color: $accent; }
    MemoryPanel > .mem--cache { color: $success; }
    MemoryPanel > .mem--shm { color: $warning; }
    MemoryPanel > .mem--free { color: $foreground-muted; }
    MemoryPanel > .mem--low { color: $error; }
    """
    COMPONENT_CLASSES = {"mem--bar", "mem--gpu", "mem--other", "mem--cache", "mem--shm", "mem--free", "mem--low"}
    TITLE = "Memory"

    @staticmethod
    def _flow(t: Text, pieces: list[Text], width: int, indent: int = 5) -> None:
        """Append pieces two spaces apart, starting a new indented line where the next would not fit."""
        col = None
        for piece in pieces:
            if col is not None and col + 2 + len(piece) <= width:
                t.append("  ")
                col += 2
            else:
                if col is not None:
                    t.append("\n")
                t.append(" " * indent)
                col = indent
            t.append_text(piece)
            col += len(piece)
        if col is not None:
            t.append("\n")

    def build(self, width: int) -> Text:
        host = self.data["host"]
        mem = host["memory"]
        unified = any((g.get("memory") or {}).get("unified") for g in self.data.get("gpus") or [])
        t = Text()
        parts = segments(mem)
        figures = f" {fmt.size(mem['used_bytes'])}/{fmt.size(mem['total_bytes'])} {mem['percent']:.0f}%"
        t.append("RAM  ", "dim")
        bar_w = max(4, width - len(figures) - 5)
        if parts is None:
            t.append(fmt.bar(mem["percent"] / 100, bar_w), self.get_component_rich_style("mem--bar"))
        else:
            n = cells(parts, bar_w)
            for key, _, cls in SEGMENTS:
                t.append(("░" if key == "free" else "█") * n[key], self.get_component_rich_style(cls))
        t.append(figures + "\n")
        pieces: list[Text] = []  # legend and figures, flowed onto as many lines as the width needs
        if parts is not None:
            for key, label, cls in SEGMENTS:
                if key == "gpu" and mem.get("gpu_process_bytes") is None:
                    continue  # not unified: GPU processes use the GPU's own memory
                piece = Text("░" if key == "free" else "█", self.get_component_rich_style(cls))
                piece.append(f" {label} {fmt.size(parts[key])}", "dim")
                pieces.append(piece)
        self._flow(t, pieces, width)
        models = for_models_text(mem)
        if models is not None:
            low = self.get_component_rich_style("mem--low")
            piece = Text("for models ", "dim")
            piece.append(models, low if (mem.get("models_available_bytes") or 0) < 0 else "bold")
            piece.append(f" ({fmt.size(mem['available_bytes'])} available − {fmt.size(mem.get('reserve_bytes'))} reserve)", "dim")
            full = (mem.get("pressure") or {}).get("full_avg10", 0)
            self._flow(t, [piece, Text(pressure_text(mem), low if full >= 10 else "")], width)
        swap = host["swap"]
        t.append("Swap ", "dim")
        if not swap["total_bytes"]:
            t.append("no swap\n", "dim italic")
        else:
            sw_fig = f" {fmt.size(swap['used_bytes'])}/{fmt.size(swap['total_bytes'])} {swap['percent']:.0f}%"
            t.append(fmt.bar(swap["percent"] / 100, max(4, width - len(sw_fig) - 5)), self.get_component_rich_style("mem--bar"))
            t.append(sw_fig + "\n")
        if unified:
            t.append("unified", "bold italic")
            t.append(": the GPU shares this RAM (GPU memory = RAM used)", "dim")
        t.rstrip()
        return t
