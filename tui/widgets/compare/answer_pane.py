"""One side of the Compare area: which model (or A / B) and its answer, scrolling."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.text import plain

if TYPE_CHECKING:
    from textual.app import ComposeResult


class AnswerPane(VerticalScroll):
    """A titled box holding one answer; untrusted text is shown as plain text."""

    def compose(self) -> ComposeResult:
        yield Static(classes="answer-text", markup=False)

    def show(
        self,
        title: str | Text,
        answer: str,
        *,
        note: str = "",
        error: bool = False,
        follow: bool = True,
    ) -> None:
        """Show ``answer`` under ``title``; ``note`` (muted) stands in while there is no answer.

        With ``follow``, the pane scrolls to the end, as for an answer still streaming in.
        """
        self.border_title = title.plain if isinstance(title, Text) else title
        body = self.query_one(".answer-text", Static)
        body.set_class(error, "-error")
        body.set_class(not answer and bool(note), "-note")
        body.update(plain(answer) if answer else Text(note))
        if answer and follow and not error:
            self.scroll_end(animate=False)
        elif not follow:
            self.scroll_home(animate=False)
