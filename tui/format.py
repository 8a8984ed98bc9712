"""Human formatting of telemetry values; ``None`` always renders as "n/a", never 0."""

from __future__ import annotations

import re
import time

NA = "n/a"


def size(n: float | None, *, binary: bool = True) -> str:
    if n is None:
        return NA
    step = 1024.0 if binary else 1000.0
    units = ["B", "KiB", "MiB", "GiB", "TiB"] if binary else ["B", "kB", "MB", "GB", "TB"]
    value = float(n)
    for unit in units:
        if abs(value) < step or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= step
    return f"{value:.1f} {units[-1]}"


def rate(n: float | None) -> str:
    return NA if n is None else size(n) + "/s"


def pct(v: float | None, digits: int = 0) -> str:
    return NA if v is None else f"{v:.{digits}f}%"


def num(v: float | None, unit: str = "", digits: int = 0) -> str:
    return NA if v is None else f"{v:.{digits}f}{unit}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NA
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def clock_time(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def bar(fraction: float | None, width: int) -> str:
    """A text bar of ``width`` cells; None -> a dotted placeholder."""
    if width <= 0:
        return ""
    if fraction is None:
        return "·" * width
    fraction = min(1.0, max(0.0, fraction))
    full = fraction * width
    whole = int(full)
    partials = " ▏▎▍▌▋▊▉"
    rest = int((full - whole) * 8)
    text = "█" * whole + (partials[rest] if whole < width and rest else "")
    return text + " " * (width - len(text))


def ports(value: object) -> str:
    """Published ports in whatever shape the agent sends them."""
    if not value:
        return ""
    if isinstance(value, dict):
        return ",".join(f"{v}->{k}" if v else str(k) for k, v in value.items())
    if isinstance(value, list):
        out = []
        for p in value:
            if isinstance(p, dict):
                host = p.get("host_port") or p.get("PublicPort") or p.get("public")
                cont = p.get("container_port") or p.get("PrivatePort") or p.get("private") or p.get("port")
                proto = p.get("protocol") or p.get("Type") or ""
                out.append(f"{host}->{cont}{'/' + proto if proto and proto != 'tcp' else ''}" if host else f"{cont}")
            else:
                out.append(str(p))
        return ",".join(out)
    return str(value)


# Words -> a theme colour name ("success", "warning", "error"), resolved against the
# running app's Textual theme by the widget that draws them.
STATE_COLOURS = {
    "running": "success",
    "ready": "success",
    "restarting": "warning",
    "paused": "warning",
    "starting": "warning",
    "pulling": "warning",
    "stopping": "warning",
    "exited": "error",
    "dead": "error",
    "failed": "error",
}


def theme_style(theme: object, word: str, default: str = "") -> str:
    """A Rich style for ``word`` in the given Textual theme's colours (dim when it has none)."""
    name = STATE_COLOURS.get(word)
    colour = getattr(theme, name, None) if name else None
    return str(colour) if colour else default


def state_words(state: str, message: str | None, exit_code: int | None = None) -> str:
    """ "failed: the container exited with code 1", never "stopped: stopped on request" or "... code 1 (exit code 1)"."""
    text = (message or "").strip()
    if not text:
        text = state
    elif not text.lower().startswith(state.lower()):
        text = f"{state}: {text}"
    if exit_code is not None and not re.search(rf"\bcode {exit_code}\b", text):
        text += f" (exit code {exit_code})"
    return text


def ago(seconds: float | None) -> str:
    """Coarse age for a table cell: "45s ago", "3m ago", "2h ago", "4d ago"."""
    if seconds is None:
        return ""
    s = int(max(0, seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"
