"""? — keys, what the states mean, and why a value may read n/a."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# sparkdeck

| key | does |
|---|---|
| `o` `d` `c` `m` | overview, machine detail, containers, models |
| `i` | incidents: earlier agent runs that ended uncleanly (crash, freeze, reboot) |
| `p` | GPU processes: who holds the GPU, grouped by container |
| `t` | fleet table: one row per machine, `S` sorts, `enter` opens; `t` again: the cards |
| `h` | detail: chart range (live 5 min, 1 h, 24 h, 7 d from the agent's history) for every chart |
| `[` `]` | previous / next machine |
| `↑` `↓` | overview: move between cards (`enter` opens); detail: scroll |
| `r` | reconnect now (also after an auth failure) |
| `ctrl+p` | command palette: every action, and themes |
| `?` | this help; `escape` closes it |
| `q` | quit |

**Containers:** `s` start, `x` stop, `R` restart, `D` remove (stop, restart and
remove ask first), `w` watch (the agent notifies when it ends), `l` logs (follows
live), `/` filter, `S` sorts by the next column (figures busiest first), `V` reverses it; a click on a header sorts. **GPU processes:** `k` SIGTERM, `K` SIGKILL (both ask first),
`/` filter, `S` sort by GPU memory, CPU, RSS or pid. A container's main process
ignores SIGTERM unless it handles it: the screen says so; use `K` or stop the
container. **Models:** `l` or `enter` launch form, `x` stop, `y` copy endpoint.

**Connection:** *live*; *connecting*; *reconnecting* shows the next try (backoff
with jitter) — data on screen is then marked **STALE** with its age; after the
reconnect the gap is backfilled from the agent. *auth failed*: the token was
refused (401/403) or revoked. *incompatible*: the agent speaks another protocol
version.

**n/a** means the machine cannot report that field (hover it for the reason,
e.g. the DGX Spark's GB10 has no power limit and no fan reading); it is never
shown as 0. *unified*: the GPU shares system RAM.

A **read** token shows everything but cannot start or stop anything.
Alert thresholds: `[alerts]` in `$XDG_CONFIG_HOME/sparkdeck/client.toml`
(`gpu_temp_c`, `gpu_temp_critical_c`, `memory_percent`, `swap_percent`, `model_exited`).
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
