"""The evaluation of a run, one row per held-out example: scores and both answers, or, blind,
the two answers as A and B with the person's vote."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text

from store.evals import Evaluation, StoredEvalItem
from trainer.control.eval_report import primary_metric
from tui.text import plain
from tui.widgets.key_table import KeyTable

if TYPE_CHECKING:
    from textual import events

SORTS = ("as evaluated", "tuned ahead first", "base ahead first")
"""The orders ``o`` cycles through."""


@dataclass(frozen=True)
class ShownItem:
    """An eval item as the table shows it: the item, its scores and (blind) which side is A."""

    stored: StoredEvalItem
    number: int
    """Its place in the evaluation, from 1, as the table and the context line number it."""
    base_score: float | None
    tuned_score: float | None
    tuned_is_a: bool
    few_shot_score: float | None = None

    @property
    def gain(self) -> float:
        """How far tuned is ahead of base on the score (0 when either is missing)."""
        if self.base_score is None or self.tuned_score is None:
            return 0.0
        return self.tuned_score - self.base_score

    @property
    def vote(self) -> str:
        """The recorded preference as the blind table shows it: A, B, tie or nothing."""
        preference = self.stored.preference
        if preference in (None, "tie"):
            return preference or ""
        return "A" if (preference == "tuned") == self.tuned_is_a else "B"


def shown_items(
    items: Sequence[StoredEvalItem],
    evaluation: Evaluation | None,
    sort: str,
    tuned_is_a: Callable[[int], bool],
) -> list[ShownItem]:
    """``items`` numbered, scored on the evaluation's main metric and put in ``sort`` order."""
    metric = primary_metric(evaluation) if evaluation is not None else "exact_match"
    shown = [
        ShownItem(
            stored,
            number,
            stored.item.base_scores.get(metric),
            stored.item.tuned_scores.get(metric),
            tuned_is_a=tuned_is_a(stored.id),
            few_shot_score=(
                stored.item.few_shot_scores.get(metric)
                if stored.item.few_shot_scores is not None
                else None
            ),
        )
        for number, stored in enumerate(items, start=1)
    ]
    return sort_items(shown, sort)


def sort_items(items: Sequence[ShownItem], sort: str) -> list[ShownItem]:
    """``items`` in the order ``sort`` names (stable, so ties keep the evaluated order)."""
    if sort == "tuned ahead first":
        return sorted(items, key=lambda item: -item.gain)
    if sort == "base ahead first":
        return sorted(items, key=lambda item: item.gain)
    return list(items)


def _score(value: float | None) -> Text:
    return Text("-" if value is None else f"{value:.2f}", justify="right")


class EvalTable(KeyTable):
    """Eval items with their scores and answers; in blind mode, answers as A and B only."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._items: tuple[ShownItem, ...] = ()
        self._blind = False
        self._width = 0

    @property
    def items(self) -> tuple[ShownItem, ...]:
        """The items in row order."""
        return self._items

    def item_at(self, row: int) -> ShownItem | None:
        """The item in row ``row``, if there is such a row."""
        return self._items[row] if 0 <= row < len(self._items) else None

    def next_unvoted_row(self) -> int | None:
        """The first row after the cursor without a vote, else the first such row at all."""
        unvoted = [row for row, shown in enumerate(self._items) if shown.stored.preference is None]
        after = [row for row in unvoted if row > self.cursor_row]
        return (after or unvoted)[0] if unvoted else None

    def on_resize(self, event: events.Resize) -> None:
        if self._items and self._text_width() != self._width:
            self.show_items(self._items, blind=self._blind)

    def _text_width(self) -> int:
        # Before the first layout the size is zero; lay out for a standard terminal then.
        available = self.scrollable_content_region.width or 78
        # Besides the text columns: the number, scores or vote, and two cells of padding each.
        if self._blind:
            return max(8, (available - 3 - 4 - 5 * 2) // 3)
        return max(8, (available - 3 - 4 - 4 - 5 - 5 - 9 * 2) // 4)

    def show_items(self, items: Sequence[ShownItem], *, blind: bool) -> None:
        """Replace the rows, keeping the cursor on the same item where possible."""
        current = self.item_at(self.cursor_row)
        self._items = tuple(items)
        self._blind = blind
        self.clear(columns=True)
        width = self._width = self._text_width()
        self.add_column("#", key="number")
        if blind:
            self.add_column("prompt", key="prompt", width=width)
            self.add_column("A", key="a", width=width)
            self.add_column("B", key="b", width=width)
            self.add_column("vote", key="vote")
        else:
            self.add_column("base", key="base")
            self.add_column("few", key="few_shot")
            self.add_column("tuned", key="tuned")
            self.add_column("pref", key="pref")
            self.add_column("prompt", key="prompt", width=width)
            self.add_column("reference", key="reference", width=width)
            self.add_column("base answer", key="base_answer", width=width)
            self.add_column("tuned answer", key="tuned_answer", width=width)
        for shown in self._items:
            item = shown.stored.item
            number = Text(str(shown.number), justify="right")
            if blind:
                a, b = (
                    (item.tuned_output, item.base_output)
                    if shown.tuned_is_a
                    else (item.base_output, item.tuned_output)
                )
                cells = [number, *(plain(text, width) for text in (item.prompt, a, b))]
                cells.append(Text(shown.vote))
            else:
                cells = [
                    number,
                    _score(shown.base_score),
                    _score(shown.few_shot_score),
                    _score(shown.tuned_score),
                    Text(shown.stored.preference or ""),
                    *(
                        plain(text, width)
                        for text in (
                            item.prompt,
                            item.reference,
                            item.base_output,
                            item.tuned_output,
                        )
                    ),
                ]
            self.add_row(*cells, key=str(shown.stored.id))
        if current is not None:
            ids = [shown.stored.id for shown in self._items]
            if current.stored.id in ids:
                self.move_cursor(row=ids.index(current.stored.id))
