"""The Chat area's input: Enter sends, ctrl+j (or shift+enter) starts a new line."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from tui.widgets.compare.prompt_box import PromptBox


class MessageBox(PromptBox):
    """The Chat area's input: Enter sends, ctrl+j (or shift+enter) starts a new line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Send"),
    ]

    def action_submit(self) -> None:
        """Send the message and empty the box at once: keys typed after Enter and still
        queued (a fast typist, a paste, tmux's send-keys) belong to the next message."""
        super().action_submit()
        self.clear()
