"""Every app-level message, in one place: small dataclasses Textual can post."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class MachineChanged(Message):
    """Machine ``index`` has new data or a new connection state (collapsed: latest wins)."""

    index: int


@dataclass
class OpenMachine(Message):
    """Show machine ``index`` in the ``view`` screen ("detail", "containers", "models")."""

    index: int
    view: str = "detail"


@dataclass
class ActionFinished(Message):
    """A control action on machine ``index`` ended; ``ok`` False carries the agent's error."""

    index: int
    what: str
    ok: bool
    detail: str = ""


@dataclass
class GuardActed(Message):
    """The memory guard on machine ``index`` acted (its newest guard frame is in client.guard_events)."""

    index: int
