"""What the Dataset area decides without Textual: which window of rows the table holds, where
its cursor goes, the orders it cycles through, and how a change is described and taken back.

The table never holds every row of a project (there may be a million): it holds a window of
``WINDOW_ROWS`` consecutive rows of the view (``store.example_pages``), and moving past
either end of it reads the window around the row moved to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from store.example_pages import EXAMPLE_ORDERS, ExampleOrder
from store.examples import Example

UNDO_DEPTH = 50
"""Changes that ``u`` can take back, newest first."""

WINDOW_ROWS = 200
"""Rows the table holds at a time."""

ORDER_NAMES: dict[ExampleOrder, str] = {
    "oldest": "oldest first",
    "newest": "newest first",
    "changed": "last changed first",
    "longest": "longest first",
}
"""How the summary names each order."""


@dataclass(frozen=True)
class UndoStep:
    """One change to examples, and the examples as they were before it."""

    description: str
    """What the change did, e.g. ``approved 3 examples``."""
    before: tuple[Example, ...]


@dataclass(frozen=True)
class Cursor:
    """Where the table's cursor goes once a window is read: on ``example_id`` when the window
    shows it (the row it was on, after a change), else at ``position`` of the view."""

    position: int
    example_id: int | None = None


def window_offset(position: int) -> int:
    """Where the window that holds ``position`` about its middle starts, so moving on either
    way stays inside it for a while."""
    return max(0, position - WINDOW_ROWS // 2)


def next_order(order: ExampleOrder) -> ExampleOrder:
    """The order after ``order``, round the list."""
    return EXAMPLE_ORDERS[(EXAMPLE_ORDERS.index(order) + 1) % len(EXAMPLE_ORDERS)]


def describe(verb: str, examples: Sequence[Example]) -> str:
    """``approved example 4`` or ``approved 3 examples``."""
    if len(examples) == 1:
        return f"{verb} example {examples[0].id}"
    return f"{verb} {len(examples)} examples"
