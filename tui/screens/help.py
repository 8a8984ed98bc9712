"""? — the keys of the current screen (generated from its BINDINGS), what the states mean, why a value may read n/a."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Markdown

from tui.keys import KeyRow, key_rows

PROSE = """\
**Containers:** stop, restart and remove ask first; watch makes the agent notify
when the container ends; `S` sorts by the next column (figures busiest first), `V`
reverses it, a click on a header sorts too. **Fleet table** (`t`): `S` sorts, `enter` opens. **GPU processes:** SIGTERM
and SIGKILL ask first; a container's main process ignores SIGTERM unless it handles
it: the screen says so; use `K` or stop the container. **Models:** `enter` opens the
launch form too. **Logs:** scrolling up pauses following (the title counts new lines);
`/&text` shows only the lines holding *text*.
**Command line** `:` — `:containers` `:models` `:processes` `:incidents` `:overview`
`:detail`, `:machine NAME`, `:forward MODEL`, `:help`, `:q`; `tab` completes.

**Connection:** *live*; *connecting*; *reconnecting* shows the next try (backoff
with jitter) — data on screen is then marked **STALE** with its age; after the
reconnect the gap is backfilled from the agent. *auth failed*: the token was
refused (401/403) or revoked. *incompatible*: the agent speaks another protocol
version.

**n/a** means the machine cannot report that field: `a` says why (for the focused
field; `tab` moves between n/a fields), so does hovering it. E.g. the DGX Spark's GB10
has no power limit and no fan reading. It is never shown as 0. *unified*: the GPU shares system RAM.

A **read** token shows everything but cannot start or stop anything.
Alert thresholds: `[alerts]` in `$XDG_CONFIG_HOME/sparkdeck/client.toml`
(`gpu_temp_c`, `gpu_temp_critical_c`, `memory_percent`, `swap_percent`, `model_exited`).
The theme chosen in the palette is kept there too (`[ui] theme`).
"""


def keys_table(title: str, rows: list[KeyRow]) -> str:
    """One line per action (a Markdown table takes two rows a key): "- `q` `^c` — Quit"."""
    body = "\n".join(f"- {' '.join(f'`{k}`' for k in row.keys.split())} — {row.description}" for row in rows)
    return f"**{title}**\n\n{body}\n"


class HelpScreen(ModalScreen[None]):
    """The keys of the screen below and of the app (from their BINDINGS), then what states mean."""

    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close")]

    def __init__(self, screen: Screen | None = None):
        super().__init__()
        self.below = screen

    def text(self) -> str:
        display = self.app.get_key_display
        parts = ["# sparkdeck\n"]
        below = self.below
        if below is not None and getattr(below, "BINDINGS", None):
            name = getattr(below, "view", "") or type(below).__name__
            parts.append(keys_table(f"This screen ({name})", key_rows(below.BINDINGS, display)))
        everywhere = key_rows(self.app.BINDINGS, display)
        everywhere.append(
            KeyRow(display(Binding(self.app.COMMAND_PALETTE_BINDING, "command_palette")), "command palette: every action, and themes", "command_palette")
        )
        parts.append(keys_table("Everywhere", everywhere))
        return "\n".join(parts) + "\n" + PROSE

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(self.text())
