"""The example editor: one multi-line box per turn and a tags line, or the text in $EDITOR; or
the answer alone, under the turns it answers, when labelling."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from store.errors import InputError
from store.examples import ChatMessage, messages_to_json, validate_messages, validate_tags
from tui.safe_text import terminal_safe

if TYPE_CHECKING:
    from textual.app import ComposeResult

EDITOR_HEADER = (
    "# Edit the turns below, then save and quit. A line '=== ROLE ===' starts a turn\n"
    "# (system, user or assistant). Lines starting with '#' before the first turn are ignored.\n"
)
"""The first lines of the file handed to $EDITOR."""

_TURN_LINE = re.compile(r"^=== (system|user|assistant) ===$")


@dataclass(frozen=True)
class EditedExample:
    """What the editor returns: the turns and tags as the person left them, validated."""

    messages: tuple[ChatMessage, ...]
    tags: tuple[str, ...]


def to_editor_text(messages: Sequence[ChatMessage]) -> str:
    """The turns as a plain text file, each under a ``=== role ===`` line."""
    parts = [EDITOR_HEADER]
    for message in messages:
        parts.append(f"=== {message.role} ===\n{message.content}\n")
    return "".join(parts)


def from_editor_text(text: str) -> tuple[ChatMessage, ...]:
    """The turns of a file written by ``to_editor_text`` (and edited); raises InputError."""
    turns: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = _TURN_LINE.match(line.strip())
        if match:
            turns.append((match.group(1), []))
        elif turns:
            turns[-1][1].append(line)
        elif line.strip() and not line.startswith("#"):
            raise InputError("text before the first '=== ROLE ===' line")
    if not turns:
        raise InputError("no '=== ROLE ===' lines: every turn starts with one")
    messages = [ChatMessage(role, "\n".join(lines).strip("\n")) for role, lines in turns]
    return validate_messages(messages_to_json(messages))


def editor_command() -> list[str] | None:
    """The person's editor from $VISUAL or $EDITOR, split like a shell would; None if unset."""
    configured = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    return shlex.split(configured) if configured and configured.strip() else None


class EditExampleScreen(ModalScreen[EditedExample | None]):
    """Edit one example's turns and tags (or its answer alone); dismissed with the result, or
    None when cancelled."""

    CSS_PATH = "edit_example.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+e", "external_editor", "$EDITOR", priority=True),
    ]

    def __init__(
        self,
        title: str,
        messages: Sequence[ChatMessage],
        tags: Sequence[str] = (),
        note: str = "",
        *,
        answer_only: bool = False,
    ) -> None:
        super().__init__()
        self.title_text = title
        """What the dialog's border says, e.g. ``Edit example 12``."""
        self.messages = tuple(messages)
        """The turns the editor starts from."""
        self.tags = tuple(tags)
        """The tags it starts from."""
        self.note = note
        """A line under the title saying what saving does."""
        self.answer_only = answer_only
        """Whether only the last turn (the answer) is editable; the others and the tags show
        as they are."""
        self._roles = [message.role for message in self.messages]

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-dialog") as dialog:
            dialog.border_title = self.title_text
            dialog.border_subtitle = "ctrl+s save · esc cancel" + (
                "" if self.answer_only else " · ctrl+e $EDITOR"
            )
            if self.note:
                yield Static(self.note, id="edit-note", markup=False)
            with VerticalScroll(id="edit-turns"):
                yield from self._turn_editors(self.messages)
            with Horizontal(id="edit-tags-line") as tags_line:
                tags_line.display = not self.answer_only
                yield Label("tags", id="edit-tags-label")
                yield Input(
                    ", ".join(self.tags),
                    placeholder="comma-separated, e.g. refunds, short",
                    id="edit-tags",
                    compact=True,
                )
            yield Static(id="edit-error", markup=False)
            with Horizontal(id="edit-buttons"):
                yield Button("Save", variant="primary", id="edit-save", compact=True)
                yield Button("Cancel", id="edit-cancel", compact=True)

    def _turn_editors(self, messages: Sequence[ChatMessage]) -> list[Label | TextArea]:
        widgets: list[Label | TextArea] = []
        self._roles = [message.role for message in messages]
        for index, message in enumerate(messages):
            widgets.append(Label(message.role, classes=f"edit-role -{message.role}"))
            widgets.append(
                TextArea(
                    terminal_safe(message.content),
                    soft_wrap=True,
                    read_only=self.answer_only and index < len(messages) - 1,
                    id=f"edit-turn-{index}",
                    classes="edit-turn",
                    compact=True,
                )
            )
        return widgets

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The whole file in $EDITOR would let the fixed turns change too.
        return not (action == "external_editor" and self.answer_only)

    def on_mount(self) -> None:
        editors = list(self.query(".edit-turn").results(TextArea))
        # The answer is what usually needs fixing.
        if editors:
            editors[-1].focus()
            editors[-1].move_cursor(editors[-1].document.end)

    def edited(self) -> EditedExample:
        """The turns and tags as they stand; raises InputError when they would not do."""
        messages = validate_messages(messages_to_json(self._current_messages()))
        raw_tags = [tag for tag in self.query_one("#edit-tags", Input).value.split(",")]
        tags = validate_tags([tag for tag in raw_tags if tag.strip()])
        return EditedExample(messages, tags)

    def _current_messages(self) -> list[ChatMessage]:
        texts = [editor.text for editor in self.query(".edit-turn").results(TextArea)]
        return [ChatMessage(role, text) for role, text in zip(self._roles, texts, strict=True)]

    def action_save(self) -> None:
        """Check the turns and close with them, or say what is wrong."""
        try:
            result = self.edited()
        except InputError as error:
            self.query_one("#edit-error", Static).update(f"Cannot save: {error.message}")
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "edit-save":
            self.action_save()
        else:
            self.action_cancel()

    async def action_external_editor(self) -> None:
        """Edit the turns in $EDITOR (the app pauses meanwhile), then show them here."""
        command = editor_command()
        if command is None:
            self.notify("Set $EDITOR (or $VISUAL) to edit in your own editor.", markup=False)
            return
        current = self._current_messages()
        with tempfile.TemporaryDirectory(prefix="tunesmith-edit-") as folder:
            path = Path(folder) / "example.txt"
            path.write_text(to_editor_text(current), encoding="utf-8")
            try:
                with self.app.suspend():
                    subprocess.run([*command, str(path)], check=False)
            except Exception as error:
                # No terminal to hand over (a headless or web driver), or no such editor.
                self.notify(f"Cannot open {command[0]}: {error}", severity="error", markup=False)
                return
            text = path.read_text(encoding="utf-8", errors="replace")
        try:
            messages = from_editor_text(text)
        except InputError as error:
            self.query_one("#edit-error", Static).update(f"Not used: {error.message}")
            return
        turns = self.query_one("#edit-turns", VerticalScroll)
        await turns.remove_children()
        await turns.mount_all(self._turn_editors(messages))
        self.query_one("#edit-error", Static).update("")
        self.on_mount()


def tuned_answer_editor(prompt: str, answer: str) -> EditExampleScreen:
    """The editor opened on a tuned model's answer, to correct it into a new train example."""
    return EditExampleScreen(
        "New example from the tuned answer",
        (ChatMessage("user", prompt), ChatMessage("assistant", answer)),
        note="Correct the answer, then ctrl+s adds it to the dataset as an approved "
        "train example (source from-compare).",
    )
