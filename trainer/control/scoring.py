"""Scores of an answer against a reference (no torch here)."""

from __future__ import annotations

import json
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable

METRICS = ("exact_match", "normalized_match", "token_f1", "json_valid", "json_equal")
"""Every score an item gets; the JSON ones only when the reference is JSON."""

METRIC_LABELS = {
    "exact_match": "exact match",
    "normalized_match": "normalized match",
    "token_f1": "token F1",
    "json_valid": "JSON valid",
    "json_equal": "JSON equal",
}
"""How each metric is named in tables and model cards."""

_ASCII_PUNCTUATION = frozenset(string.punctuation)


def _is_punctuation(character: str) -> bool:
    # ASCII symbols such as $ and + count too, as in SQuAD; beyond ASCII, Unicode punctuation
    # (curly quotes, dashes, ellipses) is what models swap for the plain forms.
    return character in _ASCII_PUNCTUATION or unicodedata.category(character).startswith("P")


def normalize(text: str) -> str:
    """Case folded, punctuation removed, whitespace collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(" " if _is_punctuation(c) else c for c in folded).split())


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


def is_json_reference(reference: str) -> bool:
    """Whether a reference is a JSON object or array (a bare word or number does not count)."""
    parsed, value = _parse_json(reference)
    return parsed and isinstance(value, dict | list)


def json_equal(left: object, right: object) -> bool:
    """Whether two parsed JSON values are equal, with ``true`` never equal to ``1``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return left == right


def score(answer: str, reference: str) -> dict[str, float | None]:
    """All metrics of one answer; JSON metrics are None unless the reference is JSON."""
    scores: dict[str, float | None] = {
        "exact_match": float(answer.strip() == reference.strip()),
        "normalized_match": float(normalize(answer) == normalize(reference)),
        "token_f1": token_f1(answer, reference),
        "json_valid": None,
        "json_equal": None,
    }
    if is_json_reference(reference):
        _, reference_value = _parse_json(reference)
        answer_is_json, answer_value = _parse_json(answer)
        scores["json_valid"] = float(answer_is_json)
        scores["json_equal"] = float(answer_is_json and json_equal(answer_value, reference_value))
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


def compared_metrics(
    base: dict[str, float | None], tuned: dict[str, float | None]
) -> list[tuple[str, float, float]]:
    """(label, base, tuned) for each metric that applies to both sides, in display order."""
    rows = []
    for metric in METRICS:
        base_value, tuned_value = base.get(metric), tuned.get(metric)
        if base_value is not None and tuned_value is not None:
            rows.append((METRIC_LABELS[metric], base_value, tuned_value))
    return rows
