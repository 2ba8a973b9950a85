"""The Dataset area's labelling queue without Textual: which unanswered row comes next, which
label each digit picks, and how a proposal and its confidence read.

The rows come from the store least-confident first, the first ``QUEUE_ROWS`` of them at a
time (``store.example_pages.unanswered_page``), with the count of all. A row answered here
leaves the queue at once, before its write is read back, so the next one shows without
waiting; a write that fails, or an undo, puts it back. Skipping goes round the rows read.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from store.example_pages import UnansweredPage
from store.examples import Example

DIGIT_LABELS = 9
"""Labels the digit keys pick (1-9); the rest are typed with the editor."""
QUEUE_ROWS = 500
"""Rows without an answer the queue reads at a time, least confident first."""


def percent(confidence: float) -> str:
    """A confidence in 0..1 as a person reads it, e.g. ``42%``."""
    return f"{confidence:.0%}"


def proposal_note(example: Example) -> str:
    """Who proposed the row's answer and how sure it was, e.g. ``run-3, 42% sure``."""
    parts = [example.proposed_by or "a model"]
    if example.confidence is not None:
        parts.append(f"{percent(example.confidence)} sure")
    return ", ".join(parts)


@dataclass(frozen=True)
class LabelQueue:
    """The unanswered rows of a project in the order a person labels them, and where they are."""

    rows: tuple[Example, ...] = ()
    """The first unanswered rows as last read, least confident proposal first."""
    total: int = 0
    """How many rows had no answer when they were read (``rows`` may be the first of them)."""
    labels: tuple[str, ...] = ()
    """The task's labels (``tui.cli.label.project_labels``), in the order the digits pick
    them; empty for free-text or JSON answers."""
    given: frozenset[int] = frozenset()
    """Rows answered in this session (written, or being written)."""
    current_id: int | None = None
    """The row shown; when it is gone, the first one waiting."""

    @property
    def waiting(self) -> tuple[Example, ...]:
        """The rows still to label, in order."""
        return tuple(row for row in self.rows if row.id not in self.given)

    @property
    def current(self) -> Example | None:
        """The row to label now, if any is left."""
        waiting = self.waiting
        chosen = next((row for row in waiting if row.id == self.current_id), None)
        return chosen or (waiting[0] if waiting else None)

    @property
    def left(self) -> int:
        """How many rows are left to label: those read without an answer, less the ones
        answered here since (and not read back yet)."""
        return self.total - sum(1 for row in self.rows if row.id in self.given)

    @property
    def labelled(self) -> int:
        """How many rows were answered in this session."""
        return len(self.given)

    def label_for(self, number: int) -> str | None:
        """The label digit ``number`` (1-9) picks, if the task has that many."""
        choices = self.labels[:DIGIT_LABELS]
        return choices[number - 1] if 1 <= number <= len(choices) else None

    def reloaded(self, page: UnansweredPage) -> LabelQueue:
        """The queue over freshly read rows, still on the same row if it waits."""
        return replace(self, rows=page.rows, total=page.total)

    def with_labels(self, labels: Sequence[str]) -> LabelQueue:
        """The queue with the task's labels as last found."""
        return replace(self, labels=tuple(labels))

    def moved(self, step: int) -> LabelQueue:
        """The queue on the row ``step`` places on (skip: 1, back: -1), wrapping at the ends."""
        waiting = self.waiting
        current = self.current
        if current is None:
            return self
        index = waiting.index(current)
        return replace(self, current_id=waiting[(index + step) % len(waiting)].id)

    def answered(self, example_id: int) -> LabelQueue:
        """The queue once row ``example_id`` is answered: on the row after it if it was shown."""
        current = self.current
        current_id = current.id if current is not None else None
        if current_id == example_id:
            current_id = self.moved(1).current_id if len(self.waiting) > 1 else None
        return replace(self, given=self.given | {example_id}, current_id=current_id)

    def taken_back(self, example_ids: Collection[int]) -> LabelQueue:
        """The queue once answers to ``example_ids`` were undone or refused: back on the first."""
        back = [example_id for example_id in example_ids if example_id in self.given]
        if not back:
            return self
        return replace(self, given=self.given - set(back), current_id=back[0])


def counts_text(queue: LabelQueue) -> str:
    """The queue's counts, e.g. ``12 left to label · 3 labelled this session``."""
    return f"{queue.left} left to label · {queue.labelled} labelled this session"
