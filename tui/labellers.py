"""Labellers over the model server: a drafted input gets its answer from the project's latest
completed run, else from the base model shown the approved examples (few-shot).

The server is the project's own (``trainer.control.launch.start_server(db_path=...,
project=...)``, as the app's), so ``run-<id>`` answers with that run's adapter. Answers are
greedy and short; a label task's answer counts only when it names one of the labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlite_utils

from store.examples import Example, list_examples
from store.projects import Project
from trainer.control.client import stream_chat
from trainer.control.few_shot import Shot, choose_shots, few_shot_messages, shot_count
from trainer.control.labels import match_answer, project_labels
from trainer.control.launch import BASE_MODEL_NAME, ServerHandle, run_model_name, served_runs
from trainer.control.snapshot import with_system_prompt

LABEL_MAX_TOKENS = 16
"""Longest answer asked for in a label task: a label and some slack."""

ANSWER_MAX_TOKENS = 256
"""Longest answer asked for in any other task."""

LABEL_TIMEOUT_SECONDS = 120.0
"""How long one answer may take before the labeller gives up."""


@dataclass(frozen=True)
class ServedLabeller:
    """Answers an input with one model of the project's server, greedily."""

    server: Callable[[], ServerHandle]
    """The running server (started on first use by whoever owns it)."""
    model: str
    """``run-<id>``, or ``base`` shown ``shots``."""
    labels: tuple[str, ...]
    """The task's labels; empty for a task whose answers are free text or JSON."""
    shots: tuple[Shot, ...] = ()
    system: str | None = None
    """The project's system prompt, as the run was trained with it."""

    @property
    def name(self) -> str:
        """Which model answers, for messages."""
        if self.model == BASE_MODEL_NAME:
            return f"the base model shown {len(self.shots)} approved examples"
        return f"{self.model.replace('-', ' ')} (tuned)"

    def __call__(self, prompt: str) -> str | None:
        """The answer to ``prompt``: one of the labels (None when it names none), else the text."""
        if self.shots:
            messages = few_shot_messages(self.shots, prompt, self.system)
        else:
            messages = with_system_prompt([{"role": "user", "content": prompt}], self.system)
        handle = self.server()
        answer = "".join(
            stream_chat(
                handle.base_url,
                handle.api_key,
                self.model,
                messages,
                max_tokens=LABEL_MAX_TOKENS if self.labels else ANSWER_MAX_TOKENS,
                temperature=0.0,
                # A label is one line; whatever the model adds after it is not the label.
                stop=("\n",) if self.labels else (),
                timeout=LABEL_TIMEOUT_SECONDS,
            )
        )
        if self.labels:
            return match_answer(self.labels, answer)
        return answer.strip() or None


def project_labeller(
    db: sqlite_utils.Database, project: Project, server: Callable[[], ServerHandle]
) -> ServedLabeller | None:
    """The best labeller the project has: its latest completed run, else the base model shown
    its approved training examples; None when it has neither."""
    labels = project_labels(db, project)
    runs = served_runs(db, project, None)
    if runs:
        latest = max(runs, key=lambda run: run.id)
        return ServedLabeller(server, run_model_name(latest.id), labels, (), project.system_prompt)
    approved_train = [
        Shot(e.prompt, e.response)
        for e in _approved_train_examples(db, project)
        if e.prompt.strip() and e.response.strip()
    ]
    shots = choose_shots(approved_train, labels, shot_count(labels))
    if not shots:
        return None
    return ServedLabeller(server, BASE_MODEL_NAME, labels, tuple(shots), project.system_prompt)


def _approved_train_examples(db: sqlite_utils.Database, project: Project) -> list[Example]:
    return [
        e
        for e in list_examples(db, project.id)
        if e.status == "approved" and e.split == "train" and e.answered
    ]
