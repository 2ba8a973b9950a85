"""An evaluation judged by the agent's model: every answer of its rows graded, the verdicts and
their summary stored with it. For the command line (``tunesmith eval``) and the app alike."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import sqlite_utils

from agent.judge import judge_rows, rows_to_judge
from agent.spec import TaskSpec
from agent.work import Work
from store.errors import InputError, ModelError
from store.evals import Evaluation, save_judgements, stored_evaluation_items
from trainer.control.comparison import judge_summary
from tui.agent_sources import endpoint_source

if TYPE_CHECKING:
    from agent.models import ChatModelSource

JUDGE_MAX_TOKENS = 200
"""Longest verdict the judge may write: a grade and one or two sentences."""

Connect = Callable[[], AbstractContextManager[sqlite_utils.Database]]
"""Opens the database for one block: the app's connection is shared, and is not held while
the judge answers."""


def wants_judge(evaluation: Evaluation, spec: TaskSpec) -> bool:
    """Whether the evaluation is of free text, where only a judge reads meaning: not a label
    task (its labels were scored), not a JSON task (its fields were), and not judged yet."""
    free_text = evaluation.labels is None and evaluation.tuned.get("json_equal") is None
    return free_text and spec.judging == "free_text" and evaluation.judge is None


def configured_judge() -> ChatModelSource | None:
    """The agent's model, which judges, where one is configured."""
    return endpoint_source(None, JUDGE_MAX_TOKENS)


def required_judge() -> ChatModelSource:
    """The agent's model, which judges; InputError saying what to set where none is."""
    from agent.models import AGENT_BASE_URL_ENV, AGENT_MODEL_ENV

    source = configured_judge()
    if source is None:
        raise InputError(
            "no model to judge with: the agent's model judges; set "
            f"{AGENT_MODEL_ENV} (and {AGENT_BASE_URL_ENV} for a server other than OpenAI)"
        )
    return source


def judge_evaluation(
    connect: Connect,
    evaluation: Evaluation,
    spec: TaskSpec,
    source: ChatModelSource,
    work: Work,
) -> Evaluation:
    """Judge every answer of ``evaluation`` with ``source``'s model and store the verdicts;
    a cancel (CancelledError) or a failed call (ModelError, the endpoint's key redacted)
    stores nothing."""
    with connect() as db:
        rows = rows_to_judge(stored_evaluation_items(db, evaluation.id))
    try:
        verdicts = judge_rows(source.get(), spec, rows, work)
    except ModelError as error:
        raise ModelError(source.redact(str(error))) from None
    with connect() as db:
        return save_judgements(db, evaluation, verdicts, judge_summary(source.name, verdicts))
