"""The Compare area: base and tuned answers side by side, and the held-out evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.widget import Widget

from tui.screens.area import AreaScreen
from tui.widgets.coming_soon import ComingSoon


class CompareScreen(AreaScreen):
    """Compare the base and the tuned model; for now, a pointer to the CLI."""

    AREA: ClassVar[str] = "compare"
    CSS_PATH = "compare.tcss"

    def compose_area(self) -> Iterable[Widget]:
        yield ComingSoon(
            "Compare",
            "Ask the base and the tuned model the same prompt and read the answers side by side; "
            "see by how much the tuned model improved on the held-out eval examples.",
            [
                ('tunesmith ask {project} "PROMPT" --base', "the base model's answer, for now"),
            ],
        ).data_bind(AreaScreen.project)
