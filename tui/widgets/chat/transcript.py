"""The Chat area's transcript: the person's messages, the agent's, and the models' answers.

The agent's messages are Markdown; what the person typed and what the models answer is
untrusted and shown as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from textual.containers import Horizontal, Vertical
from textual.widgets import Markdown, Static

from tui.safe_text import terminal_safe
from tui.text import plain

if TYPE_CHECKING:
    from textual.app import ComposeResult

_FENCE = re.compile(r"^\s*(```|~~~)")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")


def agent_markdown(text: str) -> str:
    """The agent's text as Markdown that keeps the breaks and indents it was written with.

    The guided agent writes for a terminal: one thought per line and indented listings (the
    commands, the examples). Plain Markdown would run those lines into one paragraph, so each
    line ends in a hard break and a leading indent (not a nested list's) is kept as no-break
    spaces. Fenced code passes through; control characters are removed first.
    """
    out: list[str] = []
    in_fence = False
    for line in terminal_safe(text).split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.strip():
            if line.startswith(" ") and not _LIST_ITEM.match(line):
                body = line.lstrip(" ")
                line = "\u00a0" * (len(line) - len(body)) + body
            line += "  "
        out.append(line)
    return "\n".join(out)


class PersonMessage(Static):
    """What the person typed, as plain text."""

    def __init__(self, text: str) -> None:
        super().__init__(plain(text), classes="person", markup=False)


class AgentMessage(Markdown):
    """What the agent said, as Markdown; links stay inert."""

    def __init__(self, text: str, *, classes: str = "agent") -> None:
        super().__init__(agent_markdown(text), classes=classes, open_links=False)


class ModelAnswer(Static):
    """One model's answer in a column titled with the model's name."""

    def __init__(self, title: str) -> None:
        super().__init__("", classes="model-answer -waiting", markup=False)
        self.border_title = title
        self.show("", note="waiting…")

    def show(self, answer: str, *, note: str = "", error: bool = False) -> None:
        """Show ``answer`` so far; ``note`` (muted) stands in while there is none."""
        self.set_class(not answer and not error, "-waiting")
        self.set_class(error, "-error")
        self.update(plain(answer) if answer else plain(note))


class ModelTurn(Vertical):
    """A prompt to the models and their answers side by side, one column per model."""

    def __init__(self, prompt: str, sides: Sequence[tuple[str, str]]) -> None:
        """``sides`` holds (side, title) pairs, left to right."""
        super().__init__(classes="model-turn")
        self.prompt = prompt
        self.sides = tuple(sides)

    def compose(self) -> ComposeResult:
        yield PersonMessage(self.prompt)
        with Horizontal(classes="model-answers"):
            for side, title in self.sides:
                yield ModelAnswer(title).set_class(True, f"side-{side}")

    def answer(self, side: str) -> ModelAnswer:
        """The column of ``side``."""
        return self.query_one(f".side-{side}", ModelAnswer)


def message_widgets(transcript: Iterable[tuple[str, str]]) -> list[Static | Markdown]:
    """Widgets for stored (role, text) messages, oldest first."""
    return [
        PersonMessage(text) if role == "user" else AgentMessage(text) for role, text in transcript
    ]
