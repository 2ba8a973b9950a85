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
        # Shown in the footer; the key itself is handled in ``_on_key`` (see there), as are
        # the new-line keys.
        Binding("enter", "submit", "Ask both"),
        Binding("tab", "app.focus_next", "Next", show=False),
        Binding("escape", "screen.leave_prompt", "Leave", show=False),
    ]

    NEWLINE_KEYS: ClassVar[tuple[str, ...]] = ("ctrl+j", "shift+enter")
    """Keys that start a new line (a terminal sends ctrl+j for a line feed)."""

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
        # Enter and the new-line keys are taken here, in the order the keys came, not as
        # bindings. A priority binding runs ahead of the keys still queued for this box, so a
        # line typed or pasted fast was sent cut short; a plain binding runs once the key has
        # bubbled up to the app, after them, so a fast ctrl+j (tmux's send-keys, a paste) put
        # its new line after the text that followed it.
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.action_submit()
            return
        if event.key in self.NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.action_newline()
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
