"""The Textual app: one AgentClient per target, screens that render what they hold.

Network work runs in asyncio workers (tui/client.py). A client calls back on
every frame; the app posts at most ONE pending MachineChanged per machine, so
ticks that arrive while the UI is busy collapse into one refresh (latest wins;
the client already appended every sample to its history), and refreshes one
machine at most every ``min_refresh_s`` (a 10 Hz agent does not cost 10 redraws).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.alerts import Alert, AlertRules, agent_alerts, evaluate, guard_alerts
from tui.client import AgentClient, Target, unique_labels
from tui.messages import ActionFinished, GuardActed, MachineChanged, OpenMachine
from tui.screens.base import BaseView
from tui.screens.containers import ContainersScreen
from tui.screens.fleet import FleetScreen
from tui.screens.help import HelpScreen
from tui.screens.incidents import IncidentsScreen
from tui.screens.machine import MachineScreen
from tui.screens.models import ModelsScreen
from tui.screens.overview import OverviewScreen
from tui.screens.processes import ProcessesScreen


class SparkdeckApp(App):
    TITLE = "sparkdeck"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=False),  # as in other terminal tools (inputs keep ctrl+c for copy)
        Binding("question_mark", "help", "Help"),
        Binding("o", "view('overview')", "Overview"),
        Binding("d", "view('detail')", "Detail"),
        Binding("c", "view('containers')", "Containers"),
        Binding("m", "view('models')", "Models"),
        Binding("i", "view('incidents')", "Incidents", show=False),  # in help and the palette; the footer is full
        Binding("p", "view('processes')", "GPU processes", show=False),
        Binding("t", "view('fleet')", "Fleet table", show=False),  # one row per machine, for 10+ machines
        Binding("r", "retry", "Reconnect", show=False),
        Binding("left_square_bracket", "machine(-1)", "Prev machine", show=False),
        Binding("right_square_bracket", "machine(1)", "Next machine", show=False),
    ]

    def __init__(
        self,
        targets: Iterable[Target] = (),
        *,
        clients: list[AgentClient] | None = None,
        rules: AlertRules | None = None,
        clock: Callable[[], float] = time.time,
        connect: bool = True,
        start_view: str | None = None,
        min_refresh_s: float = 0.2,
    ):
        super().__init__()
        self.clock = clock
        self.rules = rules or AlertRules()
        self.clients = clients if clients is not None else [AgentClient(t, clock=clock) for t in targets]
        for client, label in zip(self.clients, unique_labels([cl.target.name for cl in self.clients]), strict=False):
            client.on_change = self._client_changed
            client.label = label
        self.alerts: list[list[Alert]] = [self._alerts_for(c) for c in self.clients]
        self._pending = [False] * len(self.clients)
        self._last_refresh = [0.0] * len(self.clients)
        self.min_refresh_s = min_refresh_s  # per machine: at most 1/min_refresh_s UI refreshes a second
        self.connect = connect
        self.start_view = start_view or ("detail" if len(self.clients) == 1 else "overview")
        self.current = 0
        self.ui_updates = 0  # MachineChanged messages handled (vs client.frames received)

    # -- lifecycle -------------------------------------------------------------------
    def on_mount(self) -> None:
        self.push_screen(OverviewScreen())
        if self.start_view != "overview":
            self.action_view(self.start_view)
        if self.connect:
            for client in self.clients:
                self.run_worker(client.run(), group="net", exit_on_error=False, name=f"net-{client.target.name}")
        self.set_interval(1.0, self._tick)

    async def on_unmount(self) -> None:
        for client in self.clients:
            await client.close()

    def _alerts_for(self, client: AgentClient) -> list[Alert]:
        now = self.clock()
        return guard_alerts(client.guard_events, now) + agent_alerts(client.agent_alerts.values(), now) + evaluate(client.latest, self.rules)

    def _client_changed(self, client: AgentClient, kind: str) -> None:
        index = self.clients.index(client)
        if kind == "guard":  # a toast for each action, not collapsed like the refreshes
            self.post_message(GuardActed(index))
        if not self._pending[index]:
            self._pending[index] = True
            self.post_message(MachineChanged(index))

    def on_machine_changed(self, message: MachineChanged) -> None:
        index = message.index
        wait = self._last_refresh[index] + self.min_refresh_s - time.monotonic()
        if wait > 0:  # refreshed very recently: once more when the interval is up; frames collapse meanwhile
            self.set_timer(wait, partial(self._refresh_machine, index))
            return
        self._refresh_machine(index)

    def _refresh_machine(self, index: int) -> None:
        self._pending[index] = False
        self._last_refresh[index] = time.monotonic()
        self.ui_updates += 1
        client = self.clients[index]
        self.alerts[index] = self._alerts_for(client)
        view = self.top_view()
        if view is not None and view.is_mounted:
            view.machine_changed(index)

    def on_guard_acted(self, message: GuardActed) -> None:
        client = self.clients[message.index]
        if not client.guard_events:
            return
        event = client.guard_events[-1]
        warned = event.get("result") == "warned"
        self.notify(event["message"], title=f"memory guard on {client.name}", severity="warning" if warned else "error", timeout=15)

    def on_open_machine(self, message: OpenMachine) -> None:
        self.current = message.index
        self.action_view(message.view)

    def on_action_finished(self, message: ActionFinished) -> None:
        if message.ok:
            self.notify(f"{message.what}: {message.detail}", title=self.clients[message.index].name)
        else:
            self.notify(message.detail, title=f"{message.what} failed", severity="error", timeout=8)
        view = self.top_view()
        if view is not None:
            view.machine_changed(message.index)

    def _tick(self) -> None:
        view = self.top_view()
        if view is not None and view.is_mounted:
            view.tick()

    def top_view(self) -> BaseView | None:
        for screen in reversed(self.screen_stack):
            if isinstance(screen, BaseView):
                return screen
        return None

    # -- actions ----------------------------------------------------------------------
    def action_view(self, view: str) -> None:
        """Show ``view`` for the current machine, on top of the overview."""
        while len(self.screen_stack) > 1 and not isinstance(self.screen, OverviewScreen):
            self.pop_screen()
        screens: dict[str, Callable[[], Screen | str]] = {
            "detail": lambda: self._detail_screen(self.current),
            "containers": lambda: ContainersScreen(self.current),
            "models": lambda: ModelsScreen(self.current),
            "incidents": lambda: IncidentsScreen(self.current),
            "processes": lambda: ProcessesScreen(self.current),
            "fleet": FleetScreen,
        }
        if view in screens:
            self.push_screen(screens[view]())

    def _detail_screen(self, index: int) -> str:
        """The detail screen of machine ``index``, composed once and kept (installed): opening it again
        is a resume, not a compose of its ~50 widgets, and its charts' range and loaded history survive."""
        name = f"detail-{index}"
        if not self.is_screen_installed(name):
            self.install_screen(MachineScreen(index), name)
        return name

    def action_machine(self, step: int) -> None:
        if not self.clients:
            return
        self.current = (self.current + step) % len(self.clients)
        view = self.top_view()
        self.action_view(view.view if view is not None and view.view in ("detail", "containers", "models", "incidents", "processes") else "overview")
        if isinstance(self.screen, OverviewScreen):
            self.screen.focus_current()

    def action_retry(self) -> None:
        view = self.top_view()
        targets = self.clients if view is None or view.index is None else [self.clients[view.index]]
        for client in targets:
            client.retry_now()
        self.notify("reconnecting now")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every binding of the app and of the current screen, in the command palette."""
        yield from super().get_system_commands(screen)
        seen = set()
        for owner, bindings in ((screen, getattr(screen, "BINDINGS", [])), (self, self.BINDINGS)):
            for b in bindings:
                if not isinstance(b, Binding) or b.action in seen or b.action.startswith("app.pop"):
                    continue
                seen.add(b.action)
                keys = b.key_display or b.key.split(",")[0]
                yield SystemCommand(b.description, f"key: {keys}", partial(owner.run_action, b.action))
