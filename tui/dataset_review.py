"""What the Dataset area decides without Textual: which examples match the filter, and how a
change is described and taken back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from store.examples import Example

UNDO_DEPTH = 50
"""Changes that ``u`` can take back, newest first."""


@dataclass(frozen=True)
class UndoStep:
    """One change to examples, and the examples as they were before it."""

    description: str
    """What the change did, e.g. ``approved 3 examples``."""
    before: tuple[Example, ...]


def describe(verb: str, examples: Sequence[Example]) -> str:
    """``approved example 4`` or ``approved 3 examples``."""
    if len(examples) == 1:
        return f"{verb} example {examples[0].id}"
    return f"{verb} {len(examples)} examples"


def matches(example: Example, flag: str, terms: Sequence[str]) -> bool:
    """Whether every term occurs in the example's text, tags, status, split, source or flag."""
    haystack = " ".join(
        (
            example.status,
            example.split,
            example.source,
            flag,
            " ".join(example.tags),
            *(message.content for message in example.messages),
        )
    ).casefold()
    return all(term in haystack for term in terms)
