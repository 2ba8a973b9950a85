"""The lines the Compare area writes above its answers and its eval rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text

from store.evals import Evaluation, StoredEvalItem
from store.runs import Run
from trainer.control.comparison import SYSTEM_LABELS
from trainer.control.eval_report import percent
from tui.compare_answers import FreeAnswer, score_summary
from tui.run_text import result_cell
from tui.text import plain
from tui.widgets.compare.eval_table import ShownItem

ASK_HINT = "Type a prompt and press Enter: base and tuned answer side by side (ctrl+j: new line)."
"""What the line under the prompt box says before anything was asked."""


def run_choices(
    runs: Sequence[Run], evaluations: Mapping[int, Evaluation | None]
) -> list[tuple[str, int]]:
    """The run selector's options, newest first: ``run 3`` and its result."""
    return [
        (f"run {run.id} {result_cell(run, evaluations.get(run.id))}", run.id)
        for run in reversed(runs)
    ]


def run_summary(
    evaluation: Evaluation | None,
    items: Sequence[StoredEvalItem],
    typed: Mapping[str, int],
    *,
    project_chosen: bool,
    has_runs: bool,
    read_once: bool,
    evaluating: bool = False,
) -> str:
    """The top line: the chosen run's scores and votes, or why there are none."""
    if not project_chosen:
        return "No project chosen yet: press p to choose or create one."
    if not has_runs:
        if read_once:
            return "No trained run yet: start one in Train (3). Meanwhile the base model answers."
        return "Reading runs…"
    if evaluation is None and evaluating:
        return "This run is evaluating itself: its scores show here when they are stored."
    if evaluation is None:
        return "This run has no evaluation (it had no eval rows)."
    return score_summary(evaluation, items, typed)


def eval_title(
    evaluation: Evaluation | None,
    *,
    shown: bool,
    blind: bool,
    sort: str,
    evaluating: bool = False,
) -> str:
    """The line over the eval rows: how to use them, or why there are none (nothing when
    ``shown`` is false: no project or no run)."""
    if not shown:
        return ""
    if evaluation is None and evaluating:
        return "Answering the eval rows with base, few-shot and tuned…"
    if evaluation is None:
        return (
            "No evaluation for this run: runs with eval examples evaluate themselves when "
            "they finish (tunesmith eval NAME --run ID does it later)."
        )
    if blind:
        return "Blind A/B: which side is tuned is hidden; a, b or = records a vote."
    return f"Eval rows ({sort}); o sorts, v votes blind, f fixes an answer"


def row_context(shown: ShownItem) -> Text:
    """The line under the prompt box for an eval row: its prompt and reference."""
    item = shown.stored.item
    return Text.assemble(
        (f"Row {shown.number} prompt: ", "bold"),
        plain(item.prompt, 200),
        "\n",
        ("reference: ", "bold"),
        plain(item.reference, 200),
    )


def prompt_context(free: FreeAnswer | None) -> str | Text:
    """The line under the prompt box for a typed prompt, or the hint before any."""
    if free is None:
        return ASK_HINT
    return Text.assemble(("Your prompt: ", "bold"), plain(free.prompt, 200))


def judged_notice(evaluation: Evaluation) -> str:
    """What the judge made of an evaluation's answers, for the notification when it is done."""
    judge = evaluation.judge
    if judge is None or not judge.means:
        return "The judge gave no answer a score; m shows the report."
    scores = " · ".join(
        f"{SYSTEM_LABELS[system]} {percent(judge.means[system])}"
        for system in ("base", "few_shot", "tuned")
        if system in judge.means
    )
    return f"{judge.model} scored {scores}; m shows the report."
