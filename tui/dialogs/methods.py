"""The methods dialog: a project's completed runs side by side, as ``tunesmith sweep`` prints
them (trainable weights, size, time, speed, memory, score with its interval, drift)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer, Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from textual.app import ComposeResult


class MethodsScreen(ModalScreen[None]):
    """The methods table and its verdict; Esc, m or q closes it."""

    CSS_PATH = "methods.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,m,q", "close", "Close", key_display="Esc"),
    ]

    def __init__(self, table: Sequence[str], verdict: Sequence[str]) -> None:
        super().__init__()
        self.table = tuple(table)
        """The table's aligned lines, heading first."""
        self.verdict = tuple(verdict)
        """Which method did best, at what cost, and what the columns mean."""

    def compose(self) -> ComposeResult:
        with Vertical(id="methods-dialog") as dialog:
            dialog.border_title = "Methods"
            dialog.border_subtitle = "Esc to close"
            # The table scrolls sideways where the terminal is narrower; the verdict wraps.
            with ScrollableContainer(id="methods-scroll"):
                yield Static(Text("\n".join(self.table)), id="methods-table")
            yield Static(Text("\n".join(self.verdict)), id="methods-verdict")

    def action_close(self) -> None:
        """Close the dialog."""
        self.dismiss(None)
