"""When a run stops by itself, and which of its checks it keeps (no torch here).

At each check a run scores greedy answers to its validation rows with the task's metric (the
evaluation's scoring) and measures its eval loss. The best check has the highest score, the
lowest eval loss among equal scores; for free text, which has no score, eval loss alone
decides. A run is still learning while its score rises, or while its eval loss falls by a
tenth or more and the score is not already perfect; it stops once ``patience`` checks in a row
showed neither, never before one full epoch, and keeps the best check's checkpoint as its
adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trainer.control.scoring import METRIC_LABELS, is_json_reference

SCORE_TOLERANCE = 1e-9
"""Scores closer than this are equal: the same share of rows right, computed twice."""
LOSS_GAIN = 0.1
"""The share by which eval loss must fall below the best for a run to count as still learning:
small wiggles of a low loss are noise, and a falling loss alone must not run to the ceiling."""


@dataclass(frozen=True)
class Check:
    """One validation check of a run."""

    step: int
    epoch: float
    score: float | None
    """The task metric on the validation rows; None for free text."""
    loss: float | None
    """The eval loss on the validation rows."""


@dataclass(frozen=True)
class Verdict:
    """What a run's checks so far say: the best one, and whether to stop."""

    best: Check
    stale: int
    """Checks in a row that showed no learning (see ``is_learning``)."""
    stop: bool


def validation_metric(references: Sequence[str], labels: Sequence[str]) -> str | None:
    """The metric a run checks itself by, as the evaluation sums a task up: JSON equality for
    a JSON task, exact match for a label task, none for free text (eval loss decides)."""
    if any(is_json_reference(reference) for reference in references):
        return "json_equal"
    return "exact_match" if labels else None


def is_better(check: Check, best: Check) -> bool:
    """Whether ``check`` beats ``best``: a higher score, else an equal score and a lower loss."""
    if check.score is not None and best.score is not None:
        if check.score > best.score + SCORE_TOLERANCE:
            return True
        if check.score < best.score - SCORE_TOLERANCE:
            return False
    if check.loss is None or best.loss is None:
        return False
    return check.loss < best.loss


def is_learning(check: Check, best: Check) -> bool:
    """Whether ``check`` shows the run still learning against the best check before it: a
    higher score, or (below a perfect score) an eval loss lower by ``LOSS_GAIN``."""
    if check.score is not None and best.score is not None:
        if check.score > best.score + SCORE_TOLERANCE:
            return True
        if best.score >= 1 - SCORE_TOLERANCE:
            return False
    if check.loss is None or best.loss is None:
        return False
    return check.loss < best.loss * (1 - LOSS_GAIN)


def judge(checks: Sequence[Check], patience: int) -> Verdict:
    """The best of ``checks`` (oldest first, at least one) and whether the run should stop."""
    if not checks:
        raise ValueError("no checks to judge")
    best = checks[0]
    stale = 0
    for check in checks[1:]:
        stale = 0 if is_learning(check, best) else stale + 1
        if is_better(check, best):
            best = check
    # Early checks on a few dozen rows are noisy: a run always sees its rows once.
    stop = patience > 0 and stale >= patience and checks[-1].epoch >= 1
    return Verdict(best=best, stale=stale, stop=stop)


def check_text(check: Check, metric: str) -> str:
    """A check as a person reads it, e.g. ``JSON equal 0.62, eval loss 0.2412``."""
    parts = []
    if check.score is not None:
        parts.append(f"{METRIC_LABELS[metric]} {check.score:.2f}")
    if check.loss is not None:
        parts.append(f"eval loss {check.loss:.4f}")
    return ", ".join(parts) or "no measure"


def stop_reason(verdict: Verdict, metric: str) -> str:
    """Why a run stopped by itself, e.g. ``validation JSON equal 0.62, no better for 2
    checks``."""
    best = verdict.best
    measure = (
        f"{METRIC_LABELS[metric]} {best.score:.2f}"
        if best.score is not None
        else f"eval loss {best.loss:.4f}"
    )
    checks = "check" if verdict.stale == 1 else "checks"
    return f"validation {measure}, no better for {verdict.stale} {checks}"
