"""The lines above the examples table: counts by status and split, flags, selection, filter,
or why there is nothing to show."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.text import Text

from store.examples import Example
from store.projects import Project
from store.vocabulary import EXAMPLE_SPLITS, EXAMPLE_STATUSES
from tui.dataset_checks import DatasetChecks
from tui.text import plain

NO_PROJECT = "No project chosen yet: press p to choose or create one."
"""What the area says before a project is chosen."""


def no_examples(project: Project) -> str:
    """What the area says when the project has no examples."""
    return (
        f"No examples in {project.name} yet: press i to import a file, or describe your task "
        "in Chat (1) and the agent drafts some."
    )


def summary_text(
    project: Project | None,
    examples: Sequence[Example],
    checks: DatasetChecks,
    *,
    load_error: str | None,
    shown: int,
    selected: int,
    filter_text: str,
) -> str | Text:
    """The summary over the table: counts and flags, or why there is nothing to show."""
    if project is None:
        return NO_PROJECT
    if load_error is not None:
        return Text.assemble(
            "Could not read the examples: ", plain(load_error), "\nctrl+r tries again."
        )
    if not examples:
        return no_examples(project)
    flags = flags_line(
        checks,
        shown=shown,
        total=len(examples),
        selected=selected,
        filter_text=filter_text,
        unanswered=sum(1 for example in examples if not example.answered),
    )
    lines = [counts_line(examples)]
    if flags:
        lines.append(flags)
    if not shown:
        lines.append(Text("No example matches: esc clears the filter."))
    return Text("\n").join(lines)


def counts_line(examples: Sequence[Example]) -> Text:
    """For example ``12 examples · pending 3  approved 8  rejected 1 · train 10  eval 2``."""
    by_status = Counter(example.status for example in examples)
    by_split = Counter(example.split for example in examples)
    noun = "example" if len(examples) == 1 else "examples"
    statuses = "  ".join(f"{status} {by_status[status]}" for status in EXAMPLE_STATUSES)
    splits = "  ".join(f"{split} {by_split[split]}" for split in EXAMPLE_SPLITS)
    return Text.assemble((f"{len(examples)} {noun}", "bold"), f" · {statuses} · {splits}")


def flags_line(
    checks: DatasetChecks,
    *,
    shown: int,
    total: int,
    selected: int,
    filter_text: str,
    unanswered: int,
) -> Text:
    """Rows to label, duplicates, long rows, the selection, the filter and the start the
    prompts share, e.g. ``4 to label (l; g proposes) · 2 dup · prompts share 'Classify this:'``."""
    parts: list[Text] = []
    if unanswered:
        parts.append(Text(f"{unanswered} to label (l; g proposes)", style="bold"))
    if checks.duplicates:
        parts.append(Text(f"{checks.duplicates} same-prompt (dup)", style="bold"))
    if checks.too_long:
        parts.append(Text(f"{checks.too_long} too long", style="bold"))
    if selected:
        parts.append(Text(f"{selected} selected (esc clears)", style="bold"))
    if filter_text:
        parts.append(Text.assemble(f"{shown} of {total} match ", plain(repr(filter_text), 40)))
    if checks.prompt_prefix:
        shared = plain(checks.prompt_prefix.strip(), 36)
        parts.append(Text.assemble("prompts share '", shared, "' (… in the table)"))
    return Text(" · ").join(parts)
