"""The dashboard's garbage-collector settings, set once before the app runs.

Textual's compositor leaves most strips it draws in a reference cycle of their own (``Strip.divide`` at a
single cut caches ``[self]`` in the strip's own cache), so reference counting never frees them: with ten
machines on the overview, ~50 strips a second (~700 objects with their caches) wait for the collector.
At CPython's default young-generation threshold (700 allocations on 3.11-3.13) the collector ran ~1.6
times a second, a second-generation pass every ~7 s and a full pass (35 ms over the import baseline)
about once a minute: ~7 % of the overview's CPU by the collector's own clock (bench/README.md, "Client").
With a 10,000 threshold a young collection comes every 8-12 s and takes the strips with it; the older
generations keep their own thresholds (up to 3.13, one of theirs per ten of the next younger), so they
run ~14 times less often too. CPython 3.14's incremental collector reads the older thresholds
differently; the young one still sets how often it runs.

Everything alive before the app starts (Python's, Textual's and Rich's modules, the configuration) lives as
long as the process: ``freeze`` moves it out of the collector's walk, so a full collection, when one comes,
looks at what the dashboard made since rather than at every imported module.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations (less deallocations) between young-generation collections; CPython's default is 700."""


def tune() -> None:
    """Collect once, freeze what survives (it lives as long as the process), and raise the young threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
