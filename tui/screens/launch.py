"""Launch form for one model template: its params and the host port."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


def default_port(template: dict[str, Any]) -> int | None:
    if isinstance(template.get("port"), int):
        return template["port"]
    ports = template.get("ports") or {}
    if isinstance(ports, dict):
        for host in ports.values():
            if isinstance(host, int):
                return host
    return None


class LaunchScreen(ModalScreen[dict | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "launch", "Launch")]

    def __init__(self, template: dict[str, Any]):
        super().__init__()
        self.template = template
        self.params: dict[str, Any] = dict(template.get("params") or {})

    def compose(self) -> ComposeResult:
        t = self.template
        with VerticalScroll(id="dialog"):
            yield Static(f"Launch [b]{t['name']}[/b]  [dim]{t.get('image', '')}[/dim]\n{t.get('description', '')}", id="launch-title")
            for key, value in self.params.items():
                yield Label(key)
                yield Input(str(value), id=f"param-{key}", name=key)
            yield Label("host port")
            port = default_port(t)
            yield Input("" if port is None else str(port), id="port", type="integer", placeholder="template default")
            yield Static("", id="launch-error")
            with Horizontal(id="buttons"):
                yield Button("Launch (ctrl+s)", variant="primary", id="launch")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_launch() if event.button.id == "launch" else self.action_cancel()

    def on_input_submitted(self) -> None:
        self.action_launch()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_launch(self) -> None:
        body: dict[str, Any] = {}
        params = {}
        for box in self.query(Input):
            if box.id and box.id.startswith("param-") and box.name and box.value != str(self.params.get(box.name)):
                params[box.name] = box.value
        if params:
            body["params"] = params
        port_text = self.query_one("#port", Input).value.strip()
        if port_text:
            port = int(port_text)
            if not 1 <= port <= 65535:
                self.query_one("#launch-error", Static).update("[$error]port must be 1-65535[/]")
                return
            if port != default_port(self.template):
                body["port"] = port
        self.dismiss(body)
