"""The `:` command line at the bottom of the screen; `tab` completes, `enter` runs, `escape` closes."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Input, Static

from tui.commands import Command, CommandError, complete, parse


class CommandSuggester(Suggester):
    def __init__(self, machines: list[str], models: list[str]):
        super().__init__(use_cache=False, case_sensitive=True)
        self.machines, self.models = machines, models

    async def get_suggestion(self, value: str) -> str | None:
        return complete(value, self.machines, self.models)


class CommandLine(ModalScreen[Command | None]):
    BINDINGS = [Binding("escape", "close", "Close"), Binding("tab", "complete", "Complete", priority=True)]

    def __init__(self, machines: list[str], models: list[str]):
        super().__init__()
        self.machines, self.models = machines, models

    def compose(self) -> ComposeResult:
        yield Static("", id="command-error")
        yield Input(
            placeholder=":command (tab completes; :containers :models :machine NAME :forward MODEL :q)",
            id="command",
            suggester=CommandSuggester(self.machines, self.models),
        )

    def on_mount(self) -> None:
        self.query_one("#command-error", Static).display = False
        self.query_one(Input).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_complete(self) -> None:
        box = self.query_one(Input)
        done = complete(box.value, self.machines, self.models)
        if done:
            box.value = done
            box.cursor_position = len(done)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#command-error", Static).display = False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            command = parse(event.value, self.machines, self.models)
        except CommandError as exc:
            error = self.query_one("#command-error", Static)
            error.update(f"[b $error]{escape(str(exc))}[/]")
            error.display = True
            return
        self.dismiss(command)
