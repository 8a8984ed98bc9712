"""Models: the agent's catalog, launch with a form, progress to ready, endpoint, stop."""

from __future__ import annotations

import urllib.parse
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from tui import format as fmt
from tui import serving
from tui.client import ApiFailure
from tui.messages import ActionFinished
from tui.screens.base import BaseView, forward_port
from tui.screens.confirm import ConfirmScreen
from tui.screens.filtering import TableFilter
from tui.screens.launch import LaunchScreen


def model_containers(snap: dict[str, Any] | None, name: str) -> list[dict[str, Any]]:
    return [c for c in (snap or {}).get("containers") or [] if c.get("model") == name]


def entry_state(entry: dict[str, Any]) -> dict[str, Any]:
    """The catalog entry's ``state`` object (older shapes: a plain string)."""
    st = entry.get("state")
    return st if isinstance(st, dict) else ({"state": st} if isinstance(st, str) else {})


def phase(entry: dict[str, Any], conts: list[dict[str, Any]], progress: dict[str, Any] | None) -> str:
    """pulling / starting / ready / failed / stopped / exited / idle: the newest word wins."""
    if progress and progress.get("state"):
        return str(progress["state"])
    st = entry_state(entry).get("state")
    if st:
        return str(st)
    if conts:
        return "running" if any(c.get("state") == "running" for c in conts) else str(conts[0].get("state", "stopped"))
    return "idle"


BUSY = ("pulling", "starting", "ready", "running", "stopping")  # launching again is refused by the agent (409)


def pull_text(progress: dict[str, Any] | None) -> str:
    pull = (progress or {}).get("pull") or {}
    cur, total = pull.get("current_bytes"), pull.get("total_bytes")
    if cur is not None and total:
        return f" {100 * cur / total:.0f}%"
    return f" {pull['status']}" if pull.get("status") else ""


NO_ENDPOINT = ("idle", "stopping", "stopped", "failed", "exited")  # nothing answers there: no URL to copy


def endpoint(agent_url: str, entry: dict[str, Any], conts: list[dict[str, Any]], progress: dict[str, Any] | None = None) -> str:
    """The API URL to talk to (template ``endpoint``, e.g. http://host:8000/v1), never the health URL; "" when it is not up."""
    if phase(entry, conts, progress).split()[0] in NO_ENDPOINT:
        return ""
    agent_host = urllib.parse.urlsplit(agent_url).hostname or "localhost"
    published = [p["host_port"] for c in conts for p in c.get("ports") or [] if isinstance(p, dict) and p.get("host_port")]
    for source in (progress or {}, entry_state(entry)):
        url = str(source.get("endpoint") or "")
        if not url:
            continue
        if published and urllib.parse.urlsplit(url).port not in published:
            continue  # a state from before this launch, or an older agent naming the template's port: the container's wins
        return reachable(url, agent_host, listens(entry, progress))
    if published:  # an agent without `endpoint` in its states, or one not caught up: the published port and the template's path
        return f"http://{agent_host}:{published[0]}{entry.get('endpoint') or ''}"
    return ""


def reachable(url: str, agent_host: str, listen: str) -> str:
    """The agent names its own loopback; a model published beyond it is reached at the agent's host."""
    parts = urllib.parse.urlsplit(url)
    loopback = ("127.0.0.1", "localhost", "::1")
    if parts.hostname in loopback and agent_host not in loopback and any(not a.startswith(("127.", "[::1]")) for a in listen.split(", ") if a):
        return parts._replace(netloc=f"{agent_host}:{parts.port}").geturl()
    return url


def listens(entry: dict[str, Any], progress: dict[str, Any] | None = None) -> str:
    """Where the model's ports are published on its machine (127.0.0.1 unless the agent allows more)."""
    where = (progress or {}).get("listen") or entry_state(entry).get("listen") or []
    return ", ".join(str(x) for x in where)


def memory_text(entry: dict[str, Any], st: dict[str, Any]) -> str:
    """The template's memory claim and, once launched, what the fit check chose."""
    claim = entry.get("memory") or {}
    if st.get("fraction") is not None and st.get("fraction_param"):
        return f"memory: {st['fraction_param']}={st['fraction']:.2f} ({fmt.size(st.get('claim_bytes'))})"
    if st.get("claim_bytes"):
        return f"memory: claims {fmt.size(st['claim_bytes'])}"
    if claim.get("gib"):
        return f"memory: claims {claim['gib']:g} GiB"
    if claim.get("fraction_param"):
        return f"memory: {claim['fraction_param']} sized to fit at launch"
    return ""


class ModelsScreen(TableFilter, BaseView):
    view = "models"
    BINDINGS = [
        Binding("l", "launch", "Launch"),
        Binding("x", "stop", "Stop"),
        Binding("y", "copy", "Copy endpoint"),
        Binding("f", "forward", "Forward port"),
        Binding("g", "reload", "Reload catalog"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    table_type = DataTable

    def __init__(self, index: int, catalog: list[dict[str, Any]] | None = None):
        super().__init__()
        self.index = index
        self.filter_text = ""
        self._forward_pending: str | None = None  # `:forward NAME` waits for the catalog
        self.catalog: list[dict[str, Any]] = catalog or []
        self.catalog_error = ""
        self._fetch = catalog is None

    def compose(self) -> ComposeResult:
        yield self.conn_bar()
        yield Static("", id="notice")
        yield Input(placeholder="filter by name, state, image, description (enter to apply, esc to clear)", id="filter")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="models")
        yield Static("", id="model-detail")
        yield self.footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (
            ("name", "Model"),
            ("state", "State"),
            ("endpoint", "Endpoint"),
            ("listens", "Listens on"),
            ("image", "Image"),
            ("description", "Description"),
        ):
            table.add_column(label, key=key)
        self.query_one("#filter", Input).display = False
        super().on_mount()
        table.focus()
        self._forward_if_listed(final=not self._fetch)
        if self._fetch:
            self.action_reload()
            self.set_interval(5.0, self._poll)

    def _poll(self) -> None:
        if self.is_current:
            self.action_reload()

    def action_reload(self) -> None:
        self.run_worker(self._load(), exclusive=True, exit_on_error=False, group="catalog")

    async def _load(self) -> None:
        try:
            self.catalog = await self.client.models()
            self.catalog_error = ""
            for entry in self.catalog:  # a catalog answer newer than a progress frame wins
                prog = self.client.model_progress.get(entry["name"])
                if prog and (entry_state(entry).get("since") or 0) >= (prog.get("since") or 0) and prog.get("state") != "pulling":
                    del self.client.model_progress[entry["name"]]
        except ApiFailure as exc:
            self.catalog_error = exc.detail if exc.status != 404 else "this agent has no model catalog (GET /api/v1/models: 404)"
        if self.live_view:
            self.update_view()
            self._forward_if_listed(final=True)

    def apply_filter(self, text: str) -> None:
        self.filter_text = text

    def forward_when_listed(self, name: str) -> None:
        """`:forward NAME`: select the model once the catalog lists it, then forward its port."""
        self._forward_pending = name
        if self.live_view:
            self._forward_if_listed(final=not self._fetch)

    def _forward_if_listed(self, final: bool) -> None:
        name = self._forward_pending
        if not name:
            return
        if not any(e["name"] == name for e in self.catalog):
            if final:  # the catalog has answered and does not list it
                self._forward_pending = None
                self.notify(f"no model {name!r} on this machine", title="cannot forward", severity="warning")
            return
        self._forward_pending = None
        table = self.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(name))
        self.action_forward()

    def rows(self) -> list[tuple[dict[str, Any], str, str]]:
        snap = self.client.latest
        progress = self.client.model_progress
        out = []
        for entry in self.catalog:
            conts = model_containers(snap, entry["name"])
            prog = progress.get(entry["name"])
            ph = phase(entry, conts, prog)
            if not self.matches_filter(entry["name"], ph, entry.get("image"), entry.get("description")):
                continue
            out.append(
                (entry, ph + (pull_text(prog) if ph == "pulling" else "…" if ph == "stopping" else ""), endpoint(self.client.target.url, entry, conts, prog))
            )
        return out

    def update_view(self) -> None:
        super().update_view()
        lines = []
        if self.catalog_error:
            lines.append(f"[$warning]catalog: {self.catalog_error}[/]")
        denied = self.client.control_denied_reason()
        if denied and self.client.scope == "read":
            lines.append(f"[$warning]actions disabled[/]: {denied}")
        self.set_text("#notice", "\n".join(lines))
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        snap = self.client.latest
        for entry, ph, url in self.rows():
            figures = [serving.short(c["serving"]) for c in model_containers(snap, entry["name"]) if c.get("serving")]
            table.add_row(
                entry["name"],
                Text(ph + (f"  {figures[0]}" if figures else ""), fmt.theme_style(self.app.current_theme, ph.split()[0].rstrip("…"), "dim")),
                url if ph in ("ready", "running") else (Text(url, "dim") if url else ""),
                listens(entry, self.client.model_progress.get(entry["name"])),
                entry.get("image", ""),
                entry.get("description", ""),
                key=entry["name"],
            )
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self._show_detail()
        self.refresh_bindings()

    def _show_detail(self) -> None:
        entry = self.selected()
        detail = self.query_one("#model-detail", Static)
        if entry is None:
            detail.update("[dim]no models in the catalog[/dim]" if not self.catalog_error else "")
            return
        st = {**entry_state(entry), **(self.client.model_progress.get(entry["name"]) or {})}
        text = f"[b]{entry['name']}[/b]  params: " + (", ".join(f"{k}={v}" for k, v in (entry.get("params") or {}).items()) or "none")
        if memory_text(entry, st):
            text += f"\n[dim]{memory_text(entry, st)}[/dim]"
        missing = [k for k, ok in (entry.get("secrets") or {}).items() if not ok]
        if missing:
            text += f"\n[$warning]secrets not set on the agent: {', '.join(missing)}[/]"
        if st.get("message"):
            style = "$error" if st.get("state") in ("failed", "exited") else "dim"
            text += f"\n[{style}]{escape(fmt.state_words(str(st.get('state')), st['message'], st.get('exit_code')))}[/]"
        for c in model_containers(self.client.latest, entry["name"]):
            if c.get("serving"):
                text += f"\n{escape(serving.full(str(c.get('name')), c['serving']))}"
        for line in (st.get("log_tail") or [])[-3:]:
            text += f"\n[dim]{escape(str(line))}[/dim]"  # a log line is the container's text, not markup
        if st.get("exit_code") is not None and not st.get("log_tail") and self.client.scope == "read":
            text += "\n[dim]its last log lines are shown to control tokens only[/dim]"
        detail.update(text)

    def on_data_table_row_highlighted(self) -> None:
        self._show_detail()

    def selected(self) -> dict[str, Any] | None:
        key = self.cursor_key()
        return next((e for e in self.catalog if e["name"] == key), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("launch", "stop") and self.is_mounted and self.client.control_denied_reason():
            return None
        return True

    def on_data_table_row_selected(self) -> None:
        self.action_launch()

    def action_launch(self) -> None:
        denied = self.client.control_denied_reason()
        entry = self.selected()
        if denied or entry is None:
            self.notify(denied or "no model selected", title="cannot launch", severity="warning")
            return
        up = phase(entry, model_containers(self.client.latest, entry["name"]), self.client.model_progress.get(entry["name"]))
        if up.split()[0] in BUSY:  # the agent would answer 409: say it here, with what to do instead
            self.notify(f"{entry['name']} is {up.split()[0]}; x stops it, y copies its endpoint", title="already running", severity="warning")
            return
        self.app.push_screen(LaunchScreen(entry), lambda body: self._send(entry["name"], "start", body) if body is not None else None)

    def action_stop(self) -> None:
        denied = self.client.control_denied_reason()
        entry = self.selected()
        if denied or entry is None:
            self.notify(denied or "no model selected", title="cannot stop", severity="warning")
            return
        self.app.push_screen(ConfirmScreen(f"Stop model [b]{entry['name']}[/b]?", "Stop"), lambda ok: self._stop(entry["name"]) if ok else None)

    def _stop(self, name: str) -> None:
        """Show ``stopping…`` at once; the agent's own ``stopping`` then ``stopped`` frames replace it."""
        self.client.model_progress[name] = {"state": "stopping", "message": "asked the agent to stop it", "since": self.sd.clock()}
        self.update_view()
        self._send(name, "stop", None)

    def action_copy(self) -> None:
        entry = self.selected()
        url = (
            endpoint(self.client.target.url, entry, model_containers(self.client.latest, entry["name"]), self.client.model_progress.get(entry["name"]))
            if entry
            else ""
        )
        if not url:
            self.notify("no endpoint yet", severity="warning")
            return
        self.app.copy_to_clipboard(url)
        self.notify(f"copied {url}")

    def action_forward(self) -> None:
        entry = self.selected()
        if entry is None:
            self.notify("no model selected", severity="warning")
            return
        ports = [int(p) for p in (entry.get("ports") or {}).values()]
        url = endpoint("http://h", entry, model_containers(self.client.latest, entry["name"]), self.client.model_progress.get(entry["name"]))
        port = urllib.parse.urlsplit(url).port if url else (ports[0] if ports else None)
        if not port:
            self.notify(f"model {entry['name']} publishes no port", severity="warning")
            return
        self.run_worker(forward_port(self, self.client, port, entry["name"]), exit_on_error=False, group="forward")

    def _offer_force(self, name: str, body: dict, detail: str) -> None:
        """The fit check refused the launch: say why and offer to start it anyway (audited on the agent)."""
        question = f"[b]{escape(name)}[/b] does not fit in memory:\n{escape(detail)}\n\nStart it anyway? On unified memory that can freeze the machine."
        self.app.push_screen(ConfirmScreen(question, "Force start"), lambda ok: self._send(name, "start", {**body, "force": True}) if ok else None)

    def _send(self, name: str, what: str, body: dict | None) -> None:
        self.run_worker(self._do(name, what, body), exit_on_error=False, group="actions")

    async def _do(self, name: str, what: str, body: dict | None) -> None:
        try:
            await self.client.model_action(name, what, body)
            msg = ActionFinished(self.index or 0, f"{what} model {name}", True, "requested; progress shows in the table")
        except ApiFailure as exc:
            msg = ActionFinished(self.index or 0, f"{what} model {name}", False, exc.detail)
            if exc.code == "insufficient_memory" and what == "start" and not (body or {}).get("force"):
                self._offer_force(name, body or {}, exc.detail)
        self.app.post_message(msg)  # to the app: this screen may be gone by now
        await self._load()
