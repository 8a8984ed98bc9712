"""The `:` command line (k9s style): parse and complete, no UI here.

``:containers`` ``:models`` ``:processes`` ``:incidents`` ``:overview`` ``:detail`` switch
views; ``:machine NAME`` opens a machine's detail; ``:forward MODEL`` forwards a model's port;
``:help``; ``:q`` quits. Unique prefixes work (``:co`` is containers).
"""

from __future__ import annotations

from typing import NamedTuple

VIEWS = ("overview", "detail", "containers", "models", "processes", "incidents")
COMMANDS = (*VIEWS, "machine", "forward", "help", "quit", "q")
TAKES_ARG = {"machine": "NAME", "forward": "MODEL"}


class Command(NamedTuple):
    name: str  # one of COMMANDS ("q" is returned as "quit")
    arg: str = ""


class CommandError(ValueError):
    pass


def _command(word: str) -> str:
    if word in COMMANDS:
        return "quit" if word == "q" else word
    hits = [c for c in COMMANDS if c.startswith(word) and c != "q"]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise CommandError(f"“:{word}” is ambiguous: {', '.join(':' + h for h in hits)}")
    raise CommandError(f"unknown command “:{word}”; commands: {', '.join(':' + c for c in COMMANDS if c != 'q')}")


def parse(text: str, machines: list[str], models: list[str]) -> Command:
    """A command line -> Command, or CommandError saying plainly what is wrong."""
    words = text.strip().lstrip(":").split()
    if not words:
        raise CommandError("type a command: " + ", ".join(":" + c for c in COMMANDS if c != "q"))
    name = _command(words[0].lower())
    arg = " ".join(words[1:])
    if name not in TAKES_ARG:
        if arg:
            raise CommandError(f":{name} takes no argument")
        return Command(name)
    if not arg:
        raise CommandError(f":{name} needs {TAKES_ARG[name]}")
    if name == "machine" and arg not in machines:
        raise CommandError(f"no machine “{arg}”; machines: {', '.join(machines) or 'none'}")
    if name == "forward" and models and arg not in models:
        raise CommandError(f"no model “{arg}” on this machine; models: {', '.join(models)}")
    return Command(name, arg)


def complete(text: str, machines: list[str], models: list[str]) -> str | None:
    """The whole line completed (command names, then machine or model names), or None."""
    head = text.lstrip(":")
    if " " not in head:
        hits = [c for c in COMMANDS if c.startswith(head.lower()) and c != "q"] if head else []
        return hits[0] + (" " if hits[0] in TAKES_ARG else "") if len(hits) == 1 else None
    word, _, rest = head.partition(" ")
    try:
        name = _command(word.lower())
    except CommandError:
        return None
    names = machines if name == "machine" else models if name == "forward" else []
    hits = [n for n in names if n.startswith(rest)]
    return f"{name} {hits[0]}" if len(hits) == 1 and hits[0] != rest else None
