"""Keys as the user reads them, generated from the BINDINGS of the app and of a screen.

The help screen, the command palette and the footer all come from here, so a key added to a
screen's BINDINGS shows up in all three and the help can never drift from what the keys do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from textual.binding import Binding

# What the footer keeps longest when the width runs out (lower: kept longer). `?` first (it
# leads to every other key), then the screen's own keys (its reason to exist), quit, and the
# view keys, most-used first.
APP_RANK = {"help": 0, "quit": 2, "command_line": 3, "view('models')": 4, "view('containers')": 5, "view('detail')": 6, "view('overview')": 7}
SCREEN_RANK = 1
ACTION_RANK = {"filter": 0, "search": 0}  # a screen's `/` stays with `?`: the issue at 80 columns was `/ Fil`
OTHER_RANK = 8


class KeyRow(NamedTuple):
    keys: str  # as displayed, e.g. "↓ → j"
    description: str
    action: str


def display_keys(binding: Binding, display: Callable[[Binding], str]) -> str:
    """Every key of a (possibly comma-separated) binding, as the footer shows keys."""
    if binding.key_display:
        return binding.key_display
    return " ".join(display(Binding(key.strip(), binding.action)) for key in binding.key.split(","))


def key_rows(bindings: Iterable[Binding | tuple], display: Callable[[Binding], str]) -> list[KeyRow]:
    """One row per action (keys bound to the same action share a row), in declaration order."""
    rows: dict[str, KeyRow] = {}
    for b in bindings:
        if not isinstance(b, Binding) or not b.description:
            continue
        keys = display_keys(b, display)
        if b.action in rows:
            rows[b.action] = rows[b.action]._replace(keys=f"{rows[b.action].keys} {keys}")
        else:
            rows[b.action] = KeyRow(keys, b.description, b.action)
    return list(rows.values())


def short(description: str) -> str:
    """The footer's abbreviation: the first word ("Forward port" -> "Forward")."""
    return description.split()[0] if description else description


def footer_width(key: str, description: str) -> int:
    """Cells one footer key takes: " key " then "description " (Textual's FooterKey padding)."""
    return len(key) + 2 + (len(description) + 1 if description else 0)


def fit_footer(items: list[tuple[str, str, int]], width: int) -> list[tuple[int, str]]:
    """Which footer keys to show in ``width`` cells, and with which description.

    ``items``: (key display, description, rank) in display order. Full descriptions if all fit;
    else every description abbreviated; then the highest rank (least important) is dropped
    first, the later of equals first, until the rest fits. Returns (index, description) in order.
    """
    if sum(footer_width(k, d) for k, d, _ in items) <= width:
        return [(i, d) for i, (_, d, _) in enumerate(items)]
    kept = list(range(len(items)))
    while kept and sum(footer_width(items[i][0], short(items[i][1])) for i in kept) > width:
        worst = max(kept, key=lambda i: (items[i][2], i))
        kept.remove(worst)
    return [(i, short(items[i][1])) for i in kept]
