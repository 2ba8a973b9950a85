"""The help dialog: the keys that work everywhere, then those of the area it was opened from."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from textual.app import ComposeResult

KEYS: tuple[tuple[str, str], ...] = (
    ("1 2 3 4", "Chat, Dataset, Train, Compare area"),
    ("F2 F3 F4 F5", "the same, also while typing in a box"),
    ("p or Ctrl+O", "choose or create a project (Ctrl+O also while typing)"),
    ("↑ ↓  j k", "move in a table"),
    ("Tab", "next box or table"),
    ("Esc", "close a dialog"),
    ("Ctrl+P", "command palette: every action by name"),
    ("? or F1", "this help"),
    ("Ctrl+Q", "quit (training runs keep going)"),
)
"""(keys, what they do) everywhere, in the order the help lists them."""

AREA_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "chat": (
        ("Enter", "send the message (ctrl+j: new line)"),
        ("ctrl+t", "talk to: the agent, base, a tuned run, or base + tuned"),
        ("ctrl+n", "start the talk with the models afresh"),
        ("Esc", "leave the box to scroll the conversation"),
        ("/help", "the agent's commands: /spec /examples /import /draft /train"),
    ),
    "dataset": (
        ("a  r", "approve, reject (the selected rows, else this one)"),
        ("space", "select a row for a bulk approve, reject or delete"),
        ("e  t", "edit turns and tags, move between train and eval"),
        ("d  u", "delete, undo the last change"),
        ("/  i", "filter the rows (Esc clears), import a file"),
        ("o", "order: oldest, newest, last changed or longest first"),
        ("Home End", "the first or last row (pages of rows are read as you move)"),
        ("ctrl+r g", "read again; a model proposes answers (g again stops)"),
        ("l", "label the rows without an answer, least sure first:"),
        ("", "  a/Enter accept, 1-9 a label, e correct, s skip, Esc back"),
    ),
    "train": (
        ("n", "new run: the picked settings, each with why"),
        ("s", "stop the selected run (with a checkpoint), or its evaluation"),
        ("r", "resume a stopped, interrupted or failed run"),
        ("c", "compare the selected run with the base model"),
        ("m", "the methods table: every completed run's cost and score"),
    ),
    "compare": (
        ("Enter", "ask base and tuned the typed prompt"),
        ("ctrl+j", "new line in the prompt"),
        ("Esc", "leave the prompt box for the eval rows"),
        ("o", "sort eval rows: tuned ahead, base ahead"),
        ("e", "the base model's few-shot answer beside tuned's, or its zero-shot one"),
        ("f", "fix the tuned answer into a new example"),
        ("v", "blind A/B; then a, b or = records a vote"),
        ("m", "the whole evaluation: every metric, per label or field"),
        ("J", "the agent's model judges every answer; Esc stops it"),
    ),
}
"""The keys of each area (by mode name), listed after the general ones."""


class HelpScreen(ModalScreen[None]):
    """A dialog listing the keys; any of Esc, ?, F1 or q closes it."""

    CSS_PATH = "help.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,f1,q", "close", "Close", key_display="Esc"),
    ]

    def __init__(self, area: str | None = None) -> None:
        super().__init__()
        self.area = area
        """The mode name of the area the help was opened from, if any."""

    def compose(self) -> ComposeResult:
        sections = [("Everywhere", KEYS)]
        if self.area in AREA_KEYS:
            sections.append((self.area.capitalize(), AREA_KEYS[self.area]))
        width = max(len(keys) for _, keys_of in sections for keys, _ in keys_of)
        with VerticalScroll(id="help-dialog") as dialog:
            dialog.border_title = "Keys"
            dialog.border_subtitle = "Esc to close"
            for heading, keys_of in sections:
                yield Static(Text(heading, style="bold"), classes="help-heading")
                for keys, purpose in keys_of:
                    line = Text.assemble((keys.ljust(width), "bold"), "  ", purpose)
                    yield Static(line, classes="help-key")

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
