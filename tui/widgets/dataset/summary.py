"""The line above the examples table: counts by status and split, flags, selection, filter."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.text import Text

from store.examples import Example
from store.schema import EXAMPLE_SPLITS, EXAMPLE_STATUSES
from tui.dataset_checks import DatasetChecks
from tui.text import plain


def counts_line(examples: Sequence[Example]) -> Text:
    """For example ``12 examples · pending 3  approved 8  rejected 1 · train 10  eval 2``."""
    by_status = Counter(example.status for example in examples)
    by_split = Counter(example.split for example in examples)
    noun = "example" if len(examples) == 1 else "examples"
    statuses = "  ".join(f"{status} {by_status[status]}" for status in EXAMPLE_STATUSES)
    splits = "  ".join(f"{split} {by_split[split]}" for split in EXAMPLE_SPLITS)
    return Text.assemble((f"{len(examples)} {noun}", "bold"), f" · {statuses} · {splits}")


def flags_line(
    checks: DatasetChecks, *, shown: int, total: int, selected: int, filter_text: str
) -> Text:
    """Duplicates, long rows, the selection and the filter, e.g. ``2 dup · 3 selected``."""
    parts: list[Text] = []
    if checks.duplicates:
        parts.append(Text(f"{checks.duplicates} same-prompt (dup)", style="bold"))
    if checks.too_long:
        parts.append(Text(f"{checks.too_long} too long", style="bold"))
    if selected:
        parts.append(Text(f"{selected} selected (esc clears)", style="bold"))
    if filter_text:
        parts.append(Text.assemble(f"{shown} of {total} match ", plain(repr(filter_text), 40)))
    return Text(" · ").join(parts)
