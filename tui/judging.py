"""An evaluation judged by the agent's model: every answer of its rows graded, the verdicts and
their summary stored with it. For the command line (``tunesmith eval``) and the app alike."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlite_utils

from agent.judge import judge_rows, rows_to_judge
from agent.spec import TaskSpec
from agent.work import Work
from store.evals import Evaluation, save_judgements, stored_evaluation_items
from trainer.control.comparison import judge_summary

if TYPE_CHECKING:
    from agent.models import ChatModelSource

JUDGE_MAX_TOKENS = 200
"""Longest verdict the judge may write: a grade and one or two sentences."""


def wants_judge(evaluation: Evaluation, spec: TaskSpec) -> bool:
    """Whether the evaluation is of free text, where only a judge reads meaning: not a label
    task (its labels were scored), not a JSON task (its fields were), and not judged yet."""
    free_text = evaluation.labels is None and evaluation.tuned.get("json_equal") is None
    return free_text and spec.judging == "free_text" and evaluation.judge is None


def judge_evaluation(
    db: sqlite_utils.Database,
    evaluation: Evaluation,
    spec: TaskSpec,
    source: ChatModelSource,
    work: Work,
) -> Evaluation:
    """Judge every answer of ``evaluation`` with ``source``'s model and store the verdicts;
    a cancel (CancelledError) or a failed call (ModelError) stores nothing."""
    rows = rows_to_judge(stored_evaluation_items(db, evaluation.id))
    verdicts = judge_rows(source.get(), spec, rows, work)
    return save_judgements(db, evaluation, verdicts, judge_summary(source.name, verdicts))
