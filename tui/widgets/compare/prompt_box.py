"""The prompt box of the Compare area: Enter asks, ctrl+j (or shift+enter) starts a new line."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea


class PromptBox(TextArea):
    """A multi-line box whose Enter sends the prompt instead of breaking the line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Shown in the footer; the key itself is handled in ``_on_key`` (see there).
        Binding("enter", "submit", "Ask both"),
        Binding("ctrl+j,shift+enter", "newline", "New line", show=False),
        Binding("tab", "app.focus_next", "Next", show=False),
        Binding("escape", "screen.leave_prompt", "Leave", show=False),
    ]

    class Submitted(Message):
        """The person pressed Enter with a prompt in the box."""

        def __init__(self, prompt_box: PromptBox, prompt: str) -> None:
            super().__init__()
            self.prompt_box = prompt_box
            """The box it came from."""
            self.prompt = prompt
            """What was typed, trimmed."""

        @property
        def control(self) -> PromptBox:
            """The box it came from."""
            return self.prompt_box

    def __init__(self, *, id: str | None = None, placeholder: str = "") -> None:
        super().__init__(id=id, soft_wrap=True, compact=True, placeholder=placeholder)

    async def _on_key(self, event: events.Key) -> None:
        # Enter is taken here, in the order the keys came, not as a priority binding: those
        # run ahead of the keys still queued for this box, so a line typed or pasted fast,
        # Enter included, was sent cut short or not at all.
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.action_submit()
            return
        await super()._on_key(event)

    def action_submit(self) -> None:
        """Send the prompt (nothing happens while the box is blank)."""
        prompt = self.text.strip()
        if prompt:
            self.post_message(self.Submitted(self, prompt))

    def action_newline(self) -> None:
        """Start a new line in the prompt."""
        self.insert("\n")
