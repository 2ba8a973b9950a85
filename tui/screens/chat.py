"""The Chat area: an interview that collects examples, and answers from the models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.widget import Widget

from tui.screens.area import AreaScreen
from tui.widgets.coming_soon import ComingSoon


class ChatScreen(AreaScreen):
    """Chat with the agent about the task; for now, a pointer to the CLI."""

    AREA: ClassVar[str] = "chat"
    CSS_PATH = "chat.tcss"

    def compose_area(self) -> Iterable[Widget]:
        yield ComingSoon(
            "Chat",
            "Describe the task in a conversation: an agent asks what it needs to know and drafts "
            "examples into the Dataset area. Later the base and the tuned model answer here.",
            [
                ('tunesmith ask {project} "PROMPT" --base', "ask the base model one question"),
                ("tunesmith examples import {project} FILE", "add examples from JSONL or CSV"),
            ],
        ).data_bind(AreaScreen.project)
