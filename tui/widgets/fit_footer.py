"""A footer that fits: at 80 columns it abbreviates descriptions, then drops the least important keys.

Textual's Footer lays every shown binding out in one row and cuts the ones past the edge
(`/ Fil`, Models gone). This one ranks them (tui/keys.py: the screen's own keys first), and
hides the key of the view already on screen. Every key stays in `?` help and the palette.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.events import Resize
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from tui.keys import ACTION_RANK, APP_RANK, OTHER_RANK, SCREEN_RANK, fit_footer, footer_width
from tui.widgets.kept import KeepsRows

PALETTE_RESERVE = 1  # the palette key's right padding beyond its own width
PALETTE_MIN_WIDTH = 100  # narrower: the palette key gives its cells to the screen's keys (`?` help names ctrl+p)


class FitFooter(Footer, KeepsRows):
    _composed: tuple | None = None  # _signature() of the keys composed last

    def _signature(self) -> tuple:
        """What the footer shows depends on: the width and every active binding with its state."""
        active = self.screen.active_bindings.values()
        return (self.size.width or self.app.size.width, tuple((b.key, b.action, b.description, b.show, on, tip) for _, b, on, tip in active))

    async def recompose(self) -> None:
        # Textual recomposes the footer (every key, with its styles) whenever any binding may have changed, and
        # queues one per signal: opening the detail screen rebuilt the same keys four times
        if not self.is_attached or (self._bindings_ready and self._composed is not None and self._signature() == self._composed):
            return
        await super().recompose()

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        self._composed = self._signature()
        active = self.screen.active_bindings
        current = f"view('{getattr(self.screen, 'view', '')}')"
        shown: dict[str, tuple] = {}
        for node, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in shown and binding.action != current:
                rank = ACTION_RANK.get(binding.action, SCREEN_RANK if node is not self.app else APP_RANK.get(binding.action, OTHER_RANK))
                shown[binding.action] = (binding, enabled, tooltip, rank)
        entries = list(shown.values())
        width = self.size.width or self.app.size.width
        palette = active.get(self.app.COMMAND_PALETTE_BINDING) if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE else None
        if width < PALETTE_MIN_WIDTH:
            palette = None
        if palette is not None:
            width -= footer_width(self.app.get_key_display(palette[1]), palette[1].description) + PALETTE_RESERVE
        items = [(self.app.get_key_display(b), b.description, rank) for b, _, _, rank in entries]
        kept = fit_footer(items, width)
        self.styles.grid_size_columns = len(kept)
        for i, description in kept:
            binding, enabled, tooltip, _ = entries[i]
            yield FooterKey(binding.key, items[i][0], description, binding.action, disabled=not enabled, tooltip=tooltip or binding.description).data_bind(
                compact=Footer.compact
            )
        if palette is not None:
            _, binding, enabled, _ = palette
            yield FooterKey(
                binding.key, self.app.get_key_display(binding), binding.description, binding.action, classes="-command-palette", disabled=not enabled
            )

    def on_resize(self, event: Resize) -> None:
        if event.size.width != getattr(self, "_fitted_width", None):
            self._fitted_width = event.size.width
            self.call_after_refresh(self.recompose)
