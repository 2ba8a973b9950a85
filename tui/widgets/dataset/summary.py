"""The line above the examples table: how many examples, by status and by split."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.text import Text

from store.examples import Example
from store.schema import EXAMPLE_SPLITS, EXAMPLE_STATUSES


def counts_line(examples: Sequence[Example]) -> Text:
    """For example ``12 examples · approved 8  pending 3  rejected 1 · train 10  eval 2``."""
    by_status = Counter(example.status for example in examples)
    by_split = Counter(example.split for example in examples)
    noun = "example" if len(examples) == 1 else "examples"
    statuses = "  ".join(f"{status} {by_status[status]}" for status in EXAMPLE_STATUSES)
    splits = "  ".join(f"{split} {by_split[split]}" for split in EXAMPLE_SPLITS)
    return Text.assemble((f"{len(examples)} {noun}", "bold"), f" · {statuses} · {splits}")
