"""Scores of an answer against a reference (no torch here)."""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Iterable

METRICS = ("exact_match", "normalized_match", "token_f1", "json_valid", "json_equal")
"""Every score an item gets; the JSON ones only when the reference is JSON."""

_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize(text: str) -> str:
    """Lower case, punctuation removed, whitespace collapsed."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())


def token_f1(answer: str, reference: str) -> float:
    """F1 of the normalized word overlap (SQuAD style)."""
    answer_tokens = normalize(answer).split()
    reference_tokens = normalize(reference).split()
    if not answer_tokens or not reference_tokens:
        return float(answer_tokens == reference_tokens)
    common = sum((Counter(answer_tokens) & Counter(reference_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(answer_tokens)
    recall = common / len(reference_tokens)
    return 2 * precision * recall / (precision + recall)


def _parse_json(text: str) -> tuple[bool, object]:
    try:
        return True, json.loads(text.strip())
    except (ValueError, RecursionError):
        return False, None


def score(answer: str, reference: str) -> dict[str, float | None]:
    """All metrics of one answer; JSON metrics are None unless the reference is a JSON value."""
    reference_is_json, reference_value = _parse_json(reference)
    reference_is_json = reference_is_json and isinstance(reference_value, dict | list)
    scores: dict[str, float | None] = {
        "exact_match": float(answer.strip() == reference.strip()),
        "normalized_match": float(normalize(answer) == normalize(reference)),
        "token_f1": token_f1(answer, reference),
        "json_valid": None,
        "json_equal": None,
    }
    if reference_is_json:
        answer_is_json, answer_value = _parse_json(answer)
        scores["json_valid"] = float(answer_is_json)
        scores["json_equal"] = float(answer_is_json and answer_value == reference_value)
    return scores


def mean_scores(items: Iterable[dict[str, float | None]]) -> dict[str, float | None]:
    """The mean of each metric over the items where it applies (None where it never does)."""
    totals: dict[str, list[float]] = {metric: [] for metric in METRICS}
    for item in items:
        for metric in METRICS:
            value = item.get(metric)
            if value is not None:
                totals[metric].append(value)
    return {
        metric: (sum(values) / len(values) if values else None) for metric, values in totals.items()
    }
