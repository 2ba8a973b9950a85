"""Whether a task is a label task (its answers are a few fixed strings), and which labels.

A spec that names labels says so. Without one (an imported file), the answers decide: a few
distinct short strings, most of them seen more than once, are labels, as in a CSV of messages
and their intents. Labelling, few-shot prompts and per-label metrics all ask this one question.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlite_utils

from store.examples import list_examples
from store.projects import Project

MAX_LABELS = 30
"""Most distinct answers a label task has."""

MAX_LABEL_CHARS = 40
"""Longest answer that can be a label."""


def task_labels(spec_labels: Sequence[str], answers: Iterable[str]) -> tuple[str, ...]:
    """The task's labels, most common first: the spec's when it names them, else the answers'
    when they look like labels; empty for a task whose answers are free text or JSON. The
    answers are read only until more distinct ones than a label task has are seen, so a
    million rows of free text cost a few dozen reads."""
    if spec_labels:
        return tuple(dict.fromkeys(label.strip() for label in spec_labels if label.strip()))
    counts: Counter[str] = Counter()
    for answer in answers:
        if answer.strip():
            counts[answer.strip()] += 1
            if len(counts) > MAX_LABELS:
                return ()
    if len(counts) < 2:
        return ()
    if any(len(answer) > MAX_LABEL_CHARS or "\n" in answer for answer in counts):
        return ()
    if answers_look_structured(counts):
        return ()
    repeated = sum(1 for count in counts.values() if count > 1)
    # "Most seen more than once": a few singletons are fine, a column of unique strings is not.
    if repeated * 2 <= len(counts):
        return ()
    return tuple(label for label, _ in counts.most_common())


def spec_labels(task_spec: Mapping[str, Any]) -> tuple[str, ...]:
    """The labels a project's spec names for a label task (``output.labels`` when
    ``output.kind`` is ``labels``): a JSON task's labels are one field's values, not answers."""
    output = task_spec.get("output")
    if not isinstance(output, Mapping) or output.get("kind") != "labels":
        return ()
    labels = output.get("labels")
    if not isinstance(labels, list):
        return ()
    return tuple(label for label in labels if isinstance(label, str))


def project_labels(db: sqlite_utils.Database, project: Project) -> tuple[str, ...]:
    """The project's labels when it is a label task: its spec's, else its approved answers'
    when they are a few short repeated strings; empty for a free-text or JSON task."""
    answers = [
        e.response for e in list_examples(db, project.id) if e.status == "approved" and e.answered
    ]
    return task_labels(spec_labels(project.task_spec), answers)


def answers_look_structured(answers: Counter[str]) -> bool:
    """Whether the answers are JSON objects or arrays rather than words."""
    return any(answer.startswith(("{", "[")) for answer in answers)


def match_answer(labels: Sequence[str], text: str) -> str | None:
    """The label ``text`` names (case and surrounding punctuation aside), or None."""
    key = _key(text)
    return next((label for label in labels if _key(label) == key), None)


def _key(text: str) -> str:
    return text.strip().strip(".!\"'`").strip().casefold()
