"""What the Compare area keeps about its answers: a typed prompt's as they stream in, which side
is A in blind mode, and what the votes add up to."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from store.evals import Evaluation, PromptVote, StoredEvalItem
from store.vocabulary import Preference
from trainer.control.eval_report import primary_metric
from trainer.control.scoring import METRIC_LABELS

SIDES = ("base", "tuned")
"""The two answers, left then right (unless blind mode swaps them)."""

NO_TUNED_MODEL = "No tuned model yet: train a run in Train (3)."
"""What the tuned pane says while the project has no completed run."""


@dataclass
class FreeAnswer:
    """The answers to a prompt typed in the box, as they stream in."""

    request: int
    """Which ask this is; answers of an older ask are dropped."""
    prompt: str
    tuned_is_a: bool
    """In blind mode, whether the tuned answer is the left one (A)."""
    texts: dict[str, str] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)
    status: str = "Waiting for the model server…"
    voted: bool = False
    """Whether a blind vote on these answers was recorded (one per prompt)."""

    def streamed(self, side: str, text: str, *, done: bool) -> None:
        """Take ``side``'s answer so far (``done``: the whole of it)."""
        self.status = "Next: the server answers one model at a time."
        self.texts[side] = text
        if done:
            self.done.add(side)

    def fail(self, reason: str) -> None:
        """Mark the sides without a complete answer as failed for ``reason``."""
        for side in SIDES:
            if side not in self.done:
                self.errors[side] = f"No answer: {reason}"

    def votable(self, run_id: int | None) -> bool:
        """Whether both answers are complete against a tuned run and not voted on yet."""
        if self.voted or self.errors or run_id is None:
            return False
        return self.done >= set(SIDES)

    def vote(self, project_id: int, run_id: int, choice: str) -> PromptVote:
        """The vote to store for a blind ``choice`` (a, b or tie); these answers count as voted."""
        self.voted = True
        return PromptVote(
            project_id=project_id,
            run_id=run_id,
            prompt=self.prompt,
            base_output=self.texts.get("base", ""),
            tuned_output=self.texts.get("tuned", ""),
            preference=blind_preference(choice, tuned_is_a=self.tuned_is_a),
        )

    def fixable(self) -> tuple[str, str] | None:
        """The prompt and the tuned answer, once that answer is complete and not blank."""
        answer = self.texts.get("tuned", "")
        return (self.prompt, answer) if "tuned" in self.done and answer.strip() else None


class BlindSides:
    """Which side is A for each eval row and typed prompt: random per screen, then fixed."""

    def __init__(self) -> None:
        self._salt = secrets.randbits(32)

    def tuned_is_a(self, key: int) -> bool:
        """Whether the tuned answer is A for the row (or, negated, the ask) ``key``."""
        return bool(hash((self._salt, key)) & 1)


def blind_preference(choice: str, *, tuned_is_a: bool) -> Preference:
    """What a blind vote (``a``, ``b`` or ``tie``) says was better: base, tuned or tie."""
    if choice == "tie":
        return "tie"
    return "tuned" if (choice == "a") == tuned_is_a else "base"


def with_preference(
    items: Sequence[StoredEvalItem], item_id: int, preference: Preference
) -> tuple[StoredEvalItem, ...]:
    """``items`` with the vote on item ``item_id`` set to ``preference``."""
    return tuple(
        replace(item, preference=preference) if item.id == item_id else item for item in items
    )


def vote_notice(preference: str) -> str:
    """The notification after a vote: ``Recorded: you preferred the tuned answer.``"""
    voted = "a tie" if preference == "tie" else f"the {preference} answer"
    return f"Recorded: you preferred {voted}."


def pane_title(side: str, *, is_left: bool, blind: bool, run_id: int | None) -> str:
    """A pane's title: A or B when blind, else which model answers."""
    if blind:
        return "A" if is_left else "B"
    if side == "base":
        return "base"
    if side == "few_shot":
        return "base · few-shot"
    return f"tuned · run {run_id}" if run_id is not None else "tuned"


def preference_summary(items: Sequence[StoredEvalItem], typed: Mapping[str, int]) -> str:
    """``you preferred tuned 3 · base 1 · tie 0 (4 of 20)``, then the votes on typed prompts
    (``typed: tuned 2 · base 0 · tie 1``); nothing before the first vote."""
    votes = [item.preference for item in items if item.preference is not None]
    parts = []
    if votes:
        counts = " · ".join(f"{side} {votes.count(side)}" for side in ("tuned", "base", "tie"))
        parts.append(f"you preferred {counts} ({len(votes)} of {len(items)})")
    if any(typed.values()):
        counts = " · ".join(f"{side} {typed.get(side, 0)}" for side in ("tuned", "base", "tie"))
        parts.append(f"typed: {counts}")
    return " · ".join(parts)


def score_summary(
    evaluation: Evaluation, items: Sequence[StoredEvalItem], typed: Mapping[str, int]
) -> str:
    """``exact match base 0% · few-shot 33% · tuned 67% on 3 held-out rows``, then the votes
    so far."""
    metric = primary_metric(evaluation)
    systems = [("base", evaluation.base), ("few-shot", evaluation.few_shot)]
    scores = " · ".join(
        f"{name} {value:.0%}"
        for name, values in [*systems, ("tuned", evaluation.tuned)]
        if values is not None and (value := values.get(metric)) is not None
    )
    parts = [f"{METRIC_LABELS[metric]} {scores} on {evaluation.n} held-out rows"]
    preferences = preference_summary(items, typed)
    if preferences:
        parts.append(preferences)
    return " · ".join(parts)
