"""The Dataset area's table: one read-only row per example, fitted to the terminal's width."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text

from store.examples import Example
from tui.text import plain
from tui.widgets.key_table import KeyTable

if TYPE_CHECKING:
    from textual import events

STATUS_COLORS = {"approved": "success", "pending": "warning", "rejected": "error"}
"""Theme variable that colours each status."""

_MIN_TEXT_WIDTH = 12
_CELL_PADDING = 2


@dataclass(frozen=True)
class ColumnWidths:
    """Widths in cells of the columns of the examples table, padding not included."""

    id: int
    status: int
    split: int
    source: int
    tags: int
    prompt: int
    response: int


def column_widths(examples: Sequence[Example], available: int) -> ColumnWidths:
    """Widths that fit ``available`` cells: short columns fit their content, prompt and response
    share the rest (each at least a dozen cells, scrolling sideways below that)."""
    id_width = max([2, *(len(str(example.id)) for example in examples)])
    source_width = max([6, *(len(example.source) for example in examples)])
    tags_width = min(10, max([4, *(len(", ".join(example.tags)) for example in examples)]))
    fixed = id_width + len("approved") + len("split") + source_width + tags_width
    text_width = max(2 * _MIN_TEXT_WIDTH, available - fixed - 7 * _CELL_PADDING)
    return ColumnWidths(
        id=id_width,
        status=len("approved"),
        split=len("split"),
        source=source_width,
        tags=tags_width,
        prompt=text_width - text_width // 2,
        response=text_width // 2,
    )


class ExamplesTable(KeyTable):
    """The examples of one project: id, status, split, source, tags, prompt, response."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._examples: tuple[Example, ...] = ()
        self._widths: ColumnWidths | None = None

    def show_examples(self, examples: Sequence[Example]) -> None:
        """Replace the rows with ``examples``, keeping the cursor on the same row number."""
        self._examples = tuple(examples)
        self._rebuild()

    def example_at(self, row: int) -> Example | None:
        """The example shown in row ``row``, if there is such a row."""
        return self._examples[row] if 0 <= row < len(self._examples) else None

    def on_resize(self, event: events.Resize) -> None:
        if column_widths(self._examples, self._available_width()) != self._widths:
            self._rebuild()

    def _available_width(self) -> int:
        # Before the first layout the size is zero; lay out for a standard terminal then.
        return self.scrollable_content_region.width or 78

    def _rebuild(self) -> None:
        widths = column_widths(self._examples, self._available_width())
        self._widths = widths
        cursor_row = self.cursor_row
        self.clear(columns=True)
        self.add_column("id", width=widths.id, key="id")
        self.add_column("status", width=widths.status, key="status")
        self.add_column("split", width=widths.split, key="split")
        self.add_column("source", width=widths.source, key="source")
        self.add_column("tags", width=widths.tags, key="tags")
        self.add_column("prompt", width=widths.prompt, key="prompt")
        self.add_column("response", width=widths.response, key="response")
        colors = self.app.theme_variables
        for example in self._examples:
            status = plain(example.status, widths.status)
            status_color = colors.get(STATUS_COLORS.get(example.status, ""))
            if status_color:
                status.stylize(status_color)
            self.add_row(
                Text(str(example.id), justify="right"),
                status,
                plain(example.split, widths.split),
                plain(example.source, widths.source),
                plain(", ".join(example.tags), widths.tags),
                plain(example.prompt, widths.prompt),
                plain(example.response, widths.response),
                key=str(example.id),
            )
        if self._examples:
            self.move_cursor(row=min(cursor_row, len(self._examples) - 1))
