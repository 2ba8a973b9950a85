"""The help dialog: every key of the app on one page."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

KEYS: tuple[tuple[str, str], ...] = (
    ("1 2 3 4", "Chat, Dataset, Train, Compare area"),
    ("F2 F3 F4 F5", "the same, also while typing in a box"),
    ("p", "choose or create a project"),
    ("↑ ↓  j k", "move in a table"),
    ("Enter", "open the highlighted project"),
    ("r", "read the examples again (Dataset)"),
    ("Esc", "close a dialog"),
    ("Ctrl+P", "command palette: every action by name"),
    ("? or F1", "this help"),
    ("Ctrl+Q", "quit"),
)
"""(keys, what they do), in the order the help lists them."""


class HelpScreen(ModalScreen[None]):
    """A dialog listing the keys; any of Esc, ?, F1 or q closes it."""

    CSS_PATH = "help.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,f1,q", "close", "Close", key_display="Esc"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog") as dialog:
            dialog.border_title = "Keys"
            dialog.border_subtitle = "Esc to close"
            width = max(len(keys) for keys, _ in KEYS)
            for keys, purpose in KEYS:
                yield Static(
                    Text.assemble((keys.ljust(width), "bold"), "  ", purpose),
                    classes="help-key",
                )

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
