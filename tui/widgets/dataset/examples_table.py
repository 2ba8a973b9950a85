"""The Dataset area's table: a window of the rows shown, one per example, fitted to the
terminal's width; moving past either end of the window asks for the rows there."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message

from store.example_pages import ExampleWindow
from store.examples import Example
from tui.dataset_checks import NO_CHECKS, DatasetChecks, ExampleCheck, without_prefix
from tui.dataset_review import Cursor
from tui.labelling_queue import percent
from tui.text import plain
from tui.widgets.key_table import KeyTable
from tui.widgets.theme_colors import theme_color

if TYPE_CHECKING:
    from textual import events

STATUS_COLORS = {"approved": "success", "pending": "warning", "rejected": "error"}
"""Theme variable that colours each status."""

SELECTED_MARK = "✓"
"""Shown before the id of a selected example."""

NO_ANSWER = "(no answer)"
"""The response cell of a row without an answer or a proposal."""

_MIN_TEXT_WIDTH = 12
_CELL_PADDING = 2
_COLUMNS = 9
_MIN_TAGS_WIDTH = len("tags")
_MIN_SOURCE_WIDTH = len("source")


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
    tokens: int
    flag: int


def column_widths(
    examples: Sequence[Example], available: int, checks: DatasetChecks = NO_CHECKS
) -> ColumnWidths:
    """Widths that fit ``available`` cells: short columns fit their content (tags and source
    give way first), prompt and response share the rest, each at least a dozen cells."""
    id_width = 1 + max([2, *(len(str(example.id)) for example in examples)])
    source_width = min(8, max([_MIN_SOURCE_WIDTH, *(len(e.source) for e in examples)]))
    tags_width = min(10, max([_MIN_TAGS_WIDTH, *(len(", ".join(e.tags)) for e in examples)]))
    tokens_width = max([3, *(len(_tokens_label(c, checks)) for c in checks.by_id.values())])
    flag_width = 4

    def text_width() -> int:
        fixed = id_width + len("approved") + len("split") + source_width + tags_width
        return available - fixed - tokens_width - flag_width - _COLUMNS * _CELL_PADDING

    # Prompt and response matter more than the full tags and source, which the preview shows.
    while text_width() < 2 * _MIN_TEXT_WIDTH and tags_width > _MIN_TAGS_WIDTH:
        tags_width -= 1
    while text_width() < 2 * _MIN_TEXT_WIDTH and source_width > _MIN_SOURCE_WIDTH:
        source_width -= 1
    text = max(2 * _MIN_TEXT_WIDTH, text_width())
    return ColumnWidths(
        id=id_width,
        status=len("approved"),
        split=len("split"),
        source=source_width,
        tags=tags_width,
        prompt=text - text // 2,
        response=text // 2,
        tokens=tokens_width,
        flag=flag_width,
    )


def _tokens_label(check: ExampleCheck, checks: DatasetChecks) -> str:
    return f"{check.tokens}" if checks.exact_tokens else f"~{check.tokens}"


def response_cell(example: Example, width: int) -> Text:
    """The answer; for a row without one, its proposal and confidence dimmed, else a note."""
    if example.answered:
        return plain(example.response, width)
    if example.proposed is None:
        cell = plain(NO_ANSWER, width)
    else:
        sure = f" {percent(example.confidence)}" if example.confidence is not None else ""
        cell = plain(example.proposed, max(1, width - len(sure)))
        cell.append(sure)
    cell.stylize("dim italic")
    return cell


class ExamplesTable(KeyTable):
    """Examples with their id (and selection mark), status, split, source, tags, prompt (less
    the start most prompts share), response (or proposal), token length and flag.

    It holds a window of the rows shown (``ExampleWindow``); a move past either end of it, or
    to the first or last row, posts ``WindowWanted`` and the area reads that window.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
    ]

    class WindowWanted(Message):
        """The cursor should move to a row of the view that the window does not hold."""

        def __init__(self, position: int) -> None:
            super().__init__()
            self.position = position
            """The row of the view to move to, counted from 0."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._examples: tuple[Example, ...] = ()
        self._offset = 0
        self._total = 0
        self._checks: DatasetChecks = NO_CHECKS
        self._selected: frozenset[int] = frozenset()
        self._widths: ColumnWidths | None = None

    def show_window(
        self,
        window: ExampleWindow,
        checks: DatasetChecks = NO_CHECKS,
        selected: Collection[int] = (),
        cursor: Cursor | None = None,
    ) -> None:
        """Replace the rows with ``window``'s and put the cursor where ``cursor`` says (by
        default on the same example where it is still shown, else on the same row)."""
        self._examples = window.rows
        self._offset = window.offset
        self._total = window.matching
        self._checks = checks
        self._selected = frozenset(selected)
        self._rebuild(cursor or self.cursor_here())

    def mark_selected(self, selected: Collection[int]) -> None:
        """Show the selection marks of ``selected`` without rebuilding the rows."""
        self._selected = frozenset(selected)
        if self._widths is None:
            return
        for example in self._examples:
            self.update_cell(str(example.id), "id", self._id_cell(example))

    @property
    def examples(self) -> tuple[Example, ...]:
        """The examples of the window, in row order."""
        return self._examples

    @property
    def window_start(self) -> int:
        """The view's row (from 0) that the window's first row is."""
        return self._offset

    @property
    def total(self) -> int:
        """How many rows the view holds, in and out of the window."""
        return self._total

    def example_at(self, row: int) -> Example | None:
        """The example shown in row ``row`` of the window, if there is such a row."""
        return self._examples[row] if 0 <= row < len(self._examples) else None

    def cursor_here(self) -> Cursor:
        """Where the cursor is: its example and its row of the view."""
        current = self.example_at(self.cursor_row)
        return Cursor(self._offset + self.cursor_row, current.id if current is not None else None)

    # Moving past the window

    def _past_window(self, step: int) -> bool:
        """Ask for the window around the row ``step`` rows from the cursor, when that row is
        outside this window but in the view; say whether it did."""
        target = min(max(0, self._offset + self.cursor_row + step), self._total - 1)
        if not self._total or self._offset <= target < self._offset + len(self._examples):
            return False
        self.post_message(self.WindowWanted(target))
        return True

    def _page_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - (1 if self.show_header else 0))

    def action_cursor_down(self) -> None:
        if not self._past_window(1):
            super().action_cursor_down()

    def action_cursor_up(self) -> None:
        if not self._past_window(-1):
            super().action_cursor_up()

    def action_page_down(self) -> None:
        if not self._past_window(self._page_rows()):
            super().action_page_down()

    def action_page_up(self) -> None:
        if not self._past_window(-self._page_rows()):
            super().action_page_up()

    def action_scroll_top(self) -> None:
        """Go to the first row of the view."""
        if not self._past_window(-(self._offset + self.cursor_row)):
            super().action_scroll_top()

    def action_scroll_bottom(self) -> None:
        """Go to the last row of the view."""
        if not self._past_window(self._total - 1 - self._offset - self.cursor_row):
            super().action_scroll_bottom()

    # Drawing

    def on_resize(self, event: events.Resize) -> None:
        widths = column_widths(self._examples, self._available_width(), self._checks)
        if widths != self._widths:
            self._rebuild(self.cursor_here())

    def _available_width(self) -> int:
        # Before the first layout the size is zero; lay out for a standard terminal then.
        return self.scrollable_content_region.width or 78

    def _id_cell(self, example: Example) -> Text:
        mark = SELECTED_MARK if example.id in self._selected else " "
        cell = Text.assemble((mark, "bold"), str(example.id), justify="right")
        return cell

    def _rebuild(self, cursor: Cursor) -> None:
        widths = column_widths(self._examples, self._available_width(), self._checks)
        self._widths = widths
        self.clear(columns=True)
        self.add_column("id", width=widths.id, key="id")
        self.add_column("status", width=widths.status, key="status")
        self.add_column("split", width=widths.split, key="split")
        self.add_column("source", width=widths.source, key="source")
        self.add_column("tags", width=widths.tags, key="tags")
        self.add_column("prompt", width=widths.prompt, key="prompt")
        self.add_column("response", width=widths.response, key="response")
        self.add_column("tok", width=widths.tokens, key="tokens")
        self.add_column("flag", width=widths.flag, key="flag")
        colors = self.app.theme_variables
        warning = theme_color(colors, "text-warning")
        for example in self._examples:
            status = plain(example.status, widths.status)
            status_color = theme_color(colors, STATUS_COLORS.get(example.status, ""))
            if status_color:
                status.stylize(status_color)
            check = self._checks.by_id.get(example.id)
            tokens = Text(_tokens_label(check, self._checks) if check else "", justify="right")
            flag = Text(check.flag if check else "", style=warning)
            if check is not None and check.too_long:
                tokens.stylize(warning)
            self.add_row(
                self._id_cell(example),
                status,
                plain(example.split, widths.split),
                plain(example.source, widths.source),
                plain(", ".join(example.tags), widths.tags),
                plain(without_prefix(example.prompt, self._checks.prompt_prefix), widths.prompt),
                response_cell(example, widths.response),
                tokens,
                flag,
                key=str(example.id),
            )
        if not self._examples:
            return
        ids = [example.id for example in self._examples]
        if cursor.example_id in ids:
            row = ids.index(cursor.example_id)
        else:
            row = min(max(0, cursor.position - self._offset), len(ids) - 1)
        self.move_cursor(row=row)
