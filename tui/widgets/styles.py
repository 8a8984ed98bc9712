"""Component styles looked up once per theme: ``get_component_rich_style`` resolves CSS for every call
(about 2 ms each), and the detail screen's panels ask for a dozen of them on every frame."""

from __future__ import annotations

from rich.style import Style
from textual.widget import Widget


class CachedComponentStyles(Widget):
    """Mixin for widgets that draw with component classes on every update."""

    def get_component_rich_style(self, *names: str, partial: bool = False, default: Style | None = None) -> Style:
        key = (self.app.theme, names, partial, default)
        cache: dict = self.__dict__.setdefault("_component_style_cache", {})
        style = cache.get(key)
        if style is None:
            style = cache[key] = super().get_component_rich_style(*names, partial=partial, default=default)
        return style
