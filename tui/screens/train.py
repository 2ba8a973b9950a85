"""The Train area: LoRA runs on the approved examples, their progress and their results."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.widget import Widget

from tui.screens.area import AreaScreen
from tui.widgets.coming_soon import ComingSoon


class TrainScreen(AreaScreen):
    """Start, follow, stop and resume training runs; for now, a pointer to the CLI."""

    AREA: ClassVar[str] = "train"
    CSS_PATH = "train.tcss"

    def compose_area(self) -> Iterable[Widget]:
        yield ComingSoon(
            "Train",
            "Start a LoRA run on the approved train examples, watch its loss fall, stop or "
            "resume it. A run keeps going in the background when you quit.",
            [
                ("tunesmith train {project}", "fine-tune on the approved examples"),
                ("tunesmith runs list {project}", "the project's runs and their status"),
            ],
        ).data_bind(AreaScreen.project)
