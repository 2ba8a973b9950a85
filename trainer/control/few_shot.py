"""Few-shot prompts: the base model shown k approved examples before the row it answers.

The shots are chosen deterministically, spread over the labels for a label task (round robin
in the labels' order, each label's rows in id order), so every row of a batch gets the same
prefix and a prompt cache can reuse it. Labelling uses this when no tuned run exists yet, and
evaluation uses it as the middle system between zero-shot and tuned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trainer.control.labels import match_answer

DEFAULT_SHOTS = 8
"""Shots when the task has no labels (or few of them)."""

SHOTS_PER_LABEL = 2
"""Shots per label for a label task."""

MAX_SHOT_CHARS = 600
"""Longest input or answer shown as a shot; longer rows would crowd the context out."""


@dataclass(frozen=True)
class Shot:
    """One example shown to the model: an input and its answer."""

    input: str
    answer: str


def shot_count(labels: Sequence[str]) -> int:
    """How many shots a task gets by default: two a label, else eight."""
    return max(DEFAULT_SHOTS, SHOTS_PER_LABEL * len(labels)) if labels else DEFAULT_SHOTS


def choose_shots(rows: Sequence[Shot], labels: Sequence[str], k: int) -> list[Shot]:
    """Up to ``k`` of ``rows`` (in the order given): spread over ``labels`` round robin when the
    task has labels, else the first ``k`` that fit."""
    usable = [
        row
        for row in rows
        if len(row.input) <= MAX_SHOT_CHARS and len(row.answer) <= MAX_SHOT_CHARS
    ]
    if not labels:
        return usable[:k]
    by_label: dict[str, list[Shot]] = {label: [] for label in labels}
    for row in usable:
        label = match_answer(labels, row.answer)
        if label is not None:
            by_label[label].append(row)
    chosen: list[Shot] = []
    depth = 0
    while len(chosen) < k and any(len(group) > depth for group in by_label.values()):
        for label in labels:
            if len(chosen) < k and len(by_label[label]) > depth:
                chosen.append(by_label[label][depth])
        depth += 1
    return chosen


def few_shot_messages(
    shots: Sequence[Shot], prompt: str, system: str | None = None
) -> list[dict[str, str]]:
    """The chat for one row: the system prompt, each shot as a user and an assistant turn,
    then the row's input."""
    messages = [{"role": "system", "content": system}] if system else []
    for shot in shots:
        messages.append({"role": "user", "content": shot.input})
        messages.append({"role": "assistant", "content": shot.answer})
    messages.append({"role": "user", "content": prompt})
    return messages
