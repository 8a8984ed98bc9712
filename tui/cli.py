"""``sparkdeck``: the client (placeholder until the Textual client lands)."""

import sys


def main(argv: list[str] | None = None) -> int:
    print("sparkdeck: the dashboard is not built yet", file=sys.stderr)
    return 2
