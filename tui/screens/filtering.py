"""The filter box (`/` opens it, `escape` clears it) and sort key (`S`) of a screen's table,
shared by the containers, processes and models screens and the overview (its cards).

Mixed into a BaseView that composes an ``Input#filter`` and a widget of ``table_type``; by
default that widget has a ``filter_text`` attribute (and ``cycle_sort()`` for `S`); a screen
that filters otherwise overrides ``apply_filter``. The handlers use Textual's naming
convention (``on_input_changed``), which dispatch finds through the MRO; an ``@on`` decorator
in a plain mixin would not be registered.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import Input


class TableFilter:
    table_type: type  # the screen's table widget

    def _filtered_table(self) -> Any:
        return self.query_one(self.table_type)  # type: ignore[attr-defined]

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)  # type: ignore[attr-defined]
        box.display = True
        box.focus()

    def apply_filter(self, text: str) -> None:
        self._filtered_table().filter_text = text

    def matches_filter(self, *fields: object) -> bool:
        """Case-insensitive: every word of the filter is in one of ``fields``."""
        text = str(getattr(self, "filter_text", "") or "").lower()
        hay = " ".join(str(f) for f in fields if f is not None).lower()
        return all(word in hay for word in text.split())

    def action_sort(self) -> None:
        self._filtered_table().cycle_sort()
        self.update_view()  # type: ignore[attr-defined]

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)  # type: ignore[attr-defined]
        box.value = ""
        box.display = False
        self.apply_filter("")
        self._filtered_table().focus()
        self.update_view()  # type: ignore[attr-defined]

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.apply_filter(event.value)
            self.update_view()  # type: ignore[attr-defined]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._filtered_table().focus()
