"""Component styles looked up once per theme: ``get_component_rich_style`` resolves CSS for every call
(about 2 ms each), and the detail screen's panels ask for a dozen of them on every frame."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget


class CachedComponentStyles(Widget):
    """Mixin for widgets that draw with component classes on every update."""

    def get_component_rich_style(self, *names: str, partial: bool = False, default: Style | None = None) -> Style:
        key = (self.app.theme, self.classes, names, partial, default)  # a class may restyle a component (-live, -failed)
        cache: dict = self.__dict__.setdefault("_component_style_cache", {})
        style = cache.get(key)
        if style is None:
            style = cache[key] = super().get_component_rich_style(*names, partial=partial, default=default)
        return style


def set_border_text(widget: Widget, *, title: str | Text | None = None, subtitle: str | Text | None = None) -> None:
    """Set a border title or subtitle only when it changes: Textual's setter repaints the whole widget
    whatever the value, and for a GPU panel that is every chart and figure inside it, once a frame."""
    shown: dict = widget.__dict__.setdefault("_border_text_shown", {})
    if title is not None and shown.get("title") != title:
        shown["title"] = widget.border_title = title
    if subtitle is not None and shown.get("subtitle") != subtitle:
        shown["subtitle"] = widget.border_subtitle = subtitle
