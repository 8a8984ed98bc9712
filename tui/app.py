"""The Textual app: one AgentClient per target, screens that render what they hold.

Network work runs in asyncio workers (tui/client.py). A client calls back on
every frame; the app posts at most ONE pending MachineChanged per machine, so
ticks that arrive while the UI is busy collapse into one refresh (latest wins;
the client already appended every sample to its history), and refreshes one
machine at most every ``min_refresh_s`` (a 10 Hz agent does not cost 10 redraws).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from textual import constants
from textual.app import App, ScreenStackError, SystemCommand, UnknownModeError
from textual.binding import Binding
from textual.driver import Driver
from textual.notifications import Notification, Notify, SeverityLevel
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer

from tui.alerts import Alert, AlertRules, agent_alerts, evaluate, guard_alerts
from tui.client import AgentClient, Target, unique_labels
from tui.commands import Command
from tui.config import load_theme, save_theme
from tui.keys import key_rows
from tui.messages import ActionFinished, GuardActed, MachineChanged, OpenMachine
from tui.screens.base import BaseView
from tui.screens.command import CommandLine
from tui.screens.containers import ContainersScreen
from tui.screens.fleet import FleetScreen
from tui.screens.help import HelpScreen
from tui.screens.incidents import IncidentsScreen
from tui.screens.machine import MachineScreen
from tui.screens.models import ModelsScreen
from tui.screens.overview import OverviewScreen
from tui.screens.processes import ProcessesScreen
from tui.widgets.figures import Figures

TICK_S = 1.0  # ages and countdowns move on, and the fleet overview's batched cards are painted, once a tick
# detail screens kept composed (least recently opened go first): a reopen is a resume, not a compose
# of ~50 widgets, but a fleet of 100 machines must not keep 100 of them
MAX_DETAIL_SCREENS = 4
PREWARM_REST_S = 0.3  # the cursor rests on a card this long before its detail screen is built (~200 ms of CPU)
PREWARM_LAYOUTS = 4  # off-stage layouts at most (two settle it at 160x48)
PREWARM_SETTLE_S = 0.02


class SparkdeckApp(App):
    TITLE = "sparkdeck"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=False),  # as in other terminal tools (inputs keep ctrl+c for copy)
        Binding("question_mark", "help", "Help"),
        Binding("colon", "command_line", "Command", show=False),
        Binding("a", "why_na", "Why n/a", show=False),
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
        config_path: Path | None = None,
    ):
        super().__init__()
        self.clock = clock
        self.rules = rules or AlertRules()
        self.clients = clients if clients is not None else [AgentClient(t, clock=clock) for t in targets]
        for client, label in zip(self.clients, unique_labels([cl.target.name for cl in self.clients]), strict=False):
            client.on_change = self._client_changed
            client.hold = self._holding
            client.label = label
        self.alerts: list[list[Alert]] = [self._alerts_for(c) for c in self.clients]
        self._pending = [False] * len(self.clients)
        self._last_refresh = [0.0] * len(self.clients)
        self.min_refresh_s = min_refresh_s  # per machine: at most 1/min_refresh_s UI refreshes a second
        # The fleet overview repaints every changed card in ONE pass, on the tick: ten agents' unsynchronised
        # 1 Hz frames were ten compositor passes a second (the pass, not the cards, was the cost)
        self._batch: set[int] = set()  # machines whose cards wait for that pass
        self._last_flush = 0.0
        self.connect = connect
        self.start_view = start_view or ("detail" if len(self.clients) == 1 else "overview")
        self.current = 0
        self.ui_updates = 0  # MachineChanged messages handled (vs client.frames received)
        self.config_path = config_path  # client.toml: the theme is kept there (None: tests, nothing saved)
        self._keyed_toasts: dict[str, Notification] = {}
        self._detail_names: dict[str, None] = {}  # installed detail screens, least recently used first
        self._never_opened: set[str] = set()  # of those, the ones built ahead (prewarmed) and not opened since
        self._prewarming = False
        self._prewarm_broken = False  # one failure and it is not tried again
        self._card_focused_at = 0.0  # when an overview card last got the cursor (monotonic)
        self._prewarm_timer: Timer | None = None

    @property
    def current_theme(self) -> Theme:
        """Textual's current theme, read without copying the registry: Textual 8.2.8's ``get_theme`` splits the name
        and copies every registered theme into a new dict on each read, and every widget drawn reads it (its ANSI
        theme): ~4 % of the detail screen's CPU. A name that is not one registered theme goes to Textual's."""
        theme = self._registered_themes.get(self.theme)
        return theme if theme is not None else super().current_theme

    def get_driver_class(self) -> type[Driver]:
        """Textual's driver for this platform; on Linux and macOS its subclass whose input thread sleeps until a key
        arrives instead of waking ten times a second (tui/driver.py). $TEXTUAL_DRIVER still wins."""
        from textual.drivers.linux_driver import LinuxDriver  # here: it imports termios, which Windows lacks

        default = super().get_driver_class()
        if constants.DRIVER is None and default is LinuxDriver:
            from tui.driver import QuietLinuxDriver

            return QuietLinuxDriver
        return default

    # -- lifecycle -------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.config_path is not None:
            saved = load_theme(self.config_path)
            if saved in self.available_themes:
                self.theme = saved
            self.theme_changed_signal.subscribe(self, self._save_theme)
        self.push_screen(OverviewScreen())
        if self.start_view != "overview":
            self.action_view(self.start_view)
        if self.connect:
            for client in self.clients:
                self.run_worker(client.run(), group="net", exit_on_error=False, name=f"net-{client.target.name}")
        self._tick_timer = self.set_interval(TICK_S, self._tick)

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
            batching = self._batching()  # first: should it raise, the next frame tries again
            self._pending[index] = True
            if batching:  # the card waits for the tick's pass either way: no message a frame (ten a second)
                self._batch_card(index)
            else:
                self.post_message(MachineChanged(index))

    def _batching(self) -> bool:
        """The fleet overview is on top: changed cards are painted together on the tick."""
        view = self.top_view()
        return len(self.clients) > 1 and view is not None and view.view == "overview"

    def _quiet(self) -> bool:
        """No card waits and the last pass was a tick or more ago: a changed card is painted at once."""
        return not self._batch and time.monotonic() - self._last_flush >= TICK_S

    def _holding(self) -> bool:
        """A client may hold its snapshots for the tick (tui/client.py): the fleet overview paints on the tick, and
        a frame after a quiet second, which _batch_card paints at once, is not held."""
        return self._batching() and not self._quiet()

    def _batch_card(self, index: int) -> None:
        if self._quiet():  # after a quiet spell: at once
            self.call_next(self._flush_batch)
        # else the next tick flushes it, in the same pass as the ages it moves
        self._batch.add(index)

    def on_machine_changed(self, message: MachineChanged) -> None:
        index = message.index
        if self._batching():  # posted before the overview came back on top
            self._batch_card(index)
            return
        wait = self._last_refresh[index] + self.min_refresh_s - time.monotonic()
        if wait > 0:  # refreshed very recently: once more when the interval is up; frames collapse meanwhile
            self.set_timer(wait, partial(self._refresh_machine, index))
            return
        self._refresh_machine(index)

    def _flush_batch(self) -> None:
        self._last_flush = time.monotonic()
        batch, self._batch = sorted(self._batch), set()
        for index in batch:  # one handler: Textual paints all of them in one compositor pass
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
        for client in self.clients:  # the snapshots held since the last tick (fleet overview), before its pass
            client.release()
        if self._batch:
            self._flush_batch()
        view = self.top_view()
        if view is not None and view.is_mounted:
            view.tick()
        self._maybe_prewarm()

    def _maybe_prewarm(self) -> None:
        """On the overview with nothing else to do, build the focused machine's detail screen off-stage,
        so that `d` shows it at once: a cold open is ~250 ms of composing, mounting and six layouts.
        Called PREWARM_REST_S after the cursor lands on a card and on every tick (data may come later)."""
        if self._prewarming or self._prewarm_broken or not self.is_running or self._batch:
            return
        try:
            screen = self.screen
        except (ScreenStackError, UnknownModeError):  # the rest timer can fire as the app shuts down, its screens gone
            return
        if not isinstance(screen, OverviewScreen):
            return
        index = getattr(screen.focused, "index", self.current)
        if not isinstance(index, int) or not 0 <= index < len(self.clients) or self.clients[index].latest is None:
            return  # before the first snapshot the screen would be built twice (no GPUs known yet)
        # the cursor moves on: not one build per card passed (0.9: the rest timer itself may fire a hair early)
        if time.monotonic() - self._card_focused_at < PREWARM_REST_S * 0.9:
            return
        name = f"detail-{index}"
        if self.is_screen_installed(name) and self.get_screen(name).is_running:
            return
        if sum(1 for n in self._detail_names if n not in self._never_opened) >= MAX_DETAIL_SCREENS:
            return  # every screen kept is one the user opened: none is pushed out for a guess
        self._prewarming = True
        self.run_worker(self._prewarm(index), group="prewarm", exit_on_error=False)

    def card_focused(self) -> None:
        """The cursor moved to an overview card: prewarm its detail screen once it rests there."""
        self._card_focused_at = time.monotonic()
        if self._prewarm_timer is not None:
            self._prewarm_timer.stop()
        self._prewarm_timer = self.set_timer(PREWARM_REST_S, self._maybe_prewarm)

    async def _prewarm(self, index: int) -> None:
        try:
            name = self._detail_screen(index, opened=False)
            screen = self.get_screen(name)
            if screen.is_running or screen in self.screen_stack:
                return
            _, mounted = self._get_screen(name)  # what push_screen does first: register, compose, mount
            await mounted
            if not self.is_running or not isinstance(screen, MachineScreen) or screen in self.screen_stack or not screen.is_running:
                return  # `d` was pressed meanwhile: the push lays it out
            # lay it out at the terminal's size, fill it at that size, and lay it out until the panels' heights
            # and the scroll bar settle (their Resize messages ask for more): the push then finds its size
            # unchanged and nothing to lay out. One render fills every widget's line cache for the first paint.
            screen._refresh_layout(self.size)
            screen.update_view()
            for _ in range(PREWARM_LAYOUTS):
                screen._refresh_layout(self.size)
                await asyncio.sleep(PREWARM_SETTLE_S)  # the widgets handle their Resize, maybe ask for a layout
                if not self.is_running or not screen._layout_widgets or screen in self.screen_stack:
                    break
            if self.is_running and screen not in self.screen_stack:
                screen._compositor.render_update(full=True)
        except Exception as exc:  # Textual internals moved (the calls above are private): `d` still composes the screen
            self._prewarm_broken = True
            self.log.error(f"detail screen prewarm failed ({exc!r}); opening it will compose it")
        finally:
            self._prewarming = False

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

    def _detail_screen(self, index: int, opened: bool = True) -> str:
        """The detail screen of machine ``index``, composed once and kept (installed): opening it again
        is a resume, not a compose of its ~50 widgets, and its charts' range and loaded history survive."""
        name = f"detail-{index}"
        if not self.is_screen_installed(name):
            self._forget_detail_screens(keep=MAX_DETAIL_SCREENS - 1)
            self.install_screen(MachineScreen(index), name)
            if not opened:  # built ahead of a `d` that may not come: first to go, not ahead of screens the user opened
                self._detail_names = {name: None, **self._detail_names}
                self._never_opened.add(name)
        if opened:
            self._never_opened.discard(name)
            self._detail_names.pop(name, None)
            self._detail_names[name] = None  # most recently used last
        return name

    def _forget_detail_screens(self, keep: int) -> None:
        """Uninstall (and remove) the least recently used detail screens not on the stack, down to ``keep``."""
        for name in list(self._detail_names):
            if len(self._detail_names) <= keep:
                return
            screen = self.get_screen(name) if self.is_screen_installed(name) else None
            if screen is not None and screen in self.screen_stack:
                continue
            del self._detail_names[name]
            self._never_opened.discard(name)
            if screen is not None:
                self.uninstall_screen(name)
                if screen.is_running:
                    self.call_later(screen.remove)

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
            self.push_screen(HelpScreen(self.screen))

    def _save_theme(self, theme: Theme) -> None:
        if self.config_path is not None:
            try:
                save_theme(theme.name, self.config_path)
            except OSError as exc:  # a read-only config dir costs the setting, not the session
                self.notify_replacing("theme", f"cannot save the theme: {exc}", severity="warning")

    def notify_replacing(self, key: str, message: str, *, title: str = "", severity: SeverityLevel = "information", timeout: float | None = None) -> None:
        """A toast that replaces the previous one with the same ``key`` (repeated `h` presses do not stack)."""
        old = self._keyed_toasts.pop(key, None)
        if old is not None and old in self._notifications:
            self._unnotify(old, refresh=False)
        toast = Notification(message, title, severity, self.NOTIFICATION_TIMEOUT if timeout is None else timeout)
        self._keyed_toasts[key] = toast
        self.post_message(Notify(toast))

    def action_why_na(self) -> None:
        """The reason of the focused n/a field; without one, every n/a reason on the screen."""
        focused = self.focused
        one = focused.focused_reason() if isinstance(focused, Figures) else None
        reasons = [one] if one else [r for figures in self.screen.query(Figures) for r in figures.reasons()]
        message = "\n".join(reasons) if reasons else "nothing on this screen reads n/a"
        self.notify_replacing("why-na", message, title="why n/a", timeout=10)

    def action_command_line(self) -> None:
        if isinstance(self.screen, CommandLine):
            return
        view = self.top_view()
        index = self.current if view is None or view.index is None else view.index
        models = [str(e.get("name")) for e in getattr(view, "catalog", None) or [] if e.get("name")] if isinstance(view, ModelsScreen) else []
        self.push_screen(CommandLine([cl.target.name for cl in self.clients], models), partial(self._run_command, index))

    def _run_command(self, index: int, command: Command | None) -> None:
        if command is None:
            return
        if command.name == "quit":
            self.exit()
        elif command.name == "help":
            self.action_help()
        elif command.name == "machine":
            self.current = next(i for i, cl in enumerate(self.clients) if cl.target.name == command.arg)
            self.action_view("detail")
        elif command.name == "forward":
            self.current = index
            self.action_view("models")
            if isinstance(self.screen, ModelsScreen):
                self.screen.forward_when_listed(command.arg)
        else:
            self.current = index
            self.action_view(command.name)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every binding of the current screen and of the app, by name ("Help", "key ?"), Quit once."""
        ours: list[SystemCommand] = []
        display = self.get_key_display
        for owner, bindings in ((screen, getattr(screen, "BINDINGS", [])), (self, self.BINDINGS)):
            for row in key_rows(bindings, display):
                if row.action.startswith("app.pop") or any(c.title == row.description for c in ours):
                    continue
                ours.append(SystemCommand(row.description, f"key {row.keys}", partial(owner.run_action, row.action)))
        titles = {c.title for c in ours}
        for command in super().get_system_commands(screen):
            if command.title not in titles and command.title != "Quit":  # Textual's own Quit: ours is the same action
                yield command
        yield from ours
