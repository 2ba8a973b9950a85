"""The lines above the examples table: counts by status and split, flags, selection, filter,
order and where the cursor is, or why there is nothing to show."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from store.example_pages import ExampleCounts, ExampleOrder
from store.projects import Project
from store.vocabulary import EXAMPLE_SPLITS, EXAMPLE_STATUSES
from tui.dataset_checks import ProjectChecks
from tui.dataset_review import ORDER_NAMES
from tui.text import plain

NO_PROJECT = "No project chosen yet: press p to choose or create one."
"""What the area says before a project is chosen."""


@dataclass(frozen=True)
class Showing:
    """What the table shows of the project: how many rows match, where the cursor is, how
    they are filtered and ordered, and how many are selected."""

    matching: int
    """Rows of the view (every live row, unfiltered)."""
    position: int
    """The cursor's row of the view, counted from 0."""
    window_rows: int
    """Rows the table holds: when fewer than ``matching``, the summary says where it is."""
    selected: int
    filter_text: str
    order: ExampleOrder


def no_examples(project: Project) -> str:
    """What the area says when the project has no examples."""
    return (
        f"No examples in {project.name} yet: press i to import a file, or describe your task "
        "in Chat (1) and the agent drafts some."
    )


def summary_text(
    project: Project | None,
    counts: ExampleCounts | None,
    checks: ProjectChecks | None,
    showing: Showing,
    *,
    load_error: str | None,
    checking: str = "",
) -> str | Text:
    """The summary over the table: counts and flags, or why there is nothing to show."""
    if project is None:
        return NO_PROJECT
    if load_error is not None:
        return Text.assemble(
            "Could not read the examples: ", plain(load_error), "\nctrl+r tries again."
        )
    if counts is None:
        return "Reading examples…"
    if not counts.total:
        return no_examples(project)
    lines = [counts_line(counts)]
    flags = flags_line(checks, showing, unanswered=counts.unanswered, total=counts.total)
    if checking:
        flags = Text(" · ").join([part for part in (flags, Text(checking)) if part])
    if flags:
        lines.append(flags)
    if not showing.matching:
        lines.append(Text("No example matches: esc clears the filter."))
    return Text("\n").join(lines)


def counts_line(counts: ExampleCounts) -> Text:
    """For example ``12 examples · pending 3  approved 8  rejected 1 · train 10  eval 2``."""
    noun = "example" if counts.total == 1 else "examples"
    statuses = "  ".join(f"{status} {counts.by_status[status]}" for status in EXAMPLE_STATUSES)
    splits = "  ".join(f"{split} {counts.by_split[split]}" for split in EXAMPLE_SPLITS)
    return Text.assemble((f"{counts.total} {noun}", "bold"), f" · {statuses} · {splits}")


def flags_line(
    checks: ProjectChecks | None, showing: Showing, *, unanswered: int, total: int
) -> Text:
    """Rows to label, duplicates, long rows, the selection, the filter, the order, where the
    cursor is in a long list and the start the prompts share, e.g. ``4 to label (l; g
    proposes) · 2 same-prompt (dup) · prompts share 'Classify this:'``."""
    parts: list[Text] = []
    if unanswered:
        parts.append(Text(f"{unanswered} to label (l; g proposes)", style="bold"))
    if checks is not None and checks.duplicates:
        parts.append(Text(f"{checks.duplicates} same-prompt (dup)", style="bold"))
    if checks is not None and checks.too_long:
        sample = f" of {checks.sampled} sampled" if checks.from_sample else ""
        parts.append(Text(f"{checks.too_long} too long{sample}", style="bold"))
    if showing.selected:
        parts.append(Text(f"{showing.selected} selected (esc clears)", style="bold"))
    if showing.filter_text:
        parts.append(
            Text.assemble(
                f"{showing.matching} of {total} match ", plain(repr(showing.filter_text), 40)
            )
        )
    if showing.order != "oldest":
        parts.append(Text(f"{ORDER_NAMES[showing.order]} (o)"))
    if showing.matching > showing.window_rows:
        parts.append(Text(f"row {showing.position + 1} of {showing.matching} (Home/End)"))
    if checks is not None and checks.prompt_prefix:
        shared = plain(checks.prompt_prefix.strip(), 36)
        parts.append(Text.assemble("prompts share '", shared, "' (… in the table)"))
    return Text(" · ").join(parts)
