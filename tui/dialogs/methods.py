"""The methods dialog: a project's completed runs side by side, as ``tunesmith sweep`` prints
them (trainable weights, size, time, speed, memory, score with its interval, drift)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer
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

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__()
        self.lines = tuple(lines)
        """The table's lines, then the verdict's."""

    def compose(self) -> ComposeResult:
        # Scrolls both ways: the table is wider than a narrow terminal.
        with ScrollableContainer(id="methods-dialog") as dialog:
            dialog.border_title = "Methods"
            dialog.border_subtitle = "Esc to close"
            yield Static(Text("\n".join(self.lines)), id="methods-table")

    def action_close(self) -> None:
        """Close the dialog."""
        self.dismiss(None)
