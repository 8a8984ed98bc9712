"""The filter box (`/` opens it, `escape` clears it) and sort key (`S`) of a screen's table,
shared by the containers and processes screens.

Mixed into a BaseView that composes an ``Input#filter`` and a table of ``table_type`` with a
``filter_text`` attribute and a ``cycle_sort()`` method. The handlers use Textual's naming
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

    def action_sort(self) -> None:
        self._filtered_table().cycle_sort()
        self.update_view()  # type: ignore[attr-defined]

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)  # type: ignore[attr-defined]
        box.value = ""
        box.display = False
        table = self._filtered_table()
        table.filter_text = ""
        table.focus()
        self.update_view()  # type: ignore[attr-defined]

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self._filtered_table().filter_text = event.value
            self.update_view()  # type: ignore[attr-defined]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._filtered_table().focus()
