"""Scores of answers against references (no torch here): per item, and per task.

Every task gets the per-item metrics (``score``). A label task also gets accuracy, per-label
precision / recall / F1 and a confusion matrix over the whole set (``label_metrics``); a JSON
task also gets the accuracy of each top-level field (``json_field_accuracy``).
"""

from __future__ import annotations

import json
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from trainer.control.labels import match_answer

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


def json_field_accuracy(answers: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """For each top-level field of the references that are JSON objects, the share of those
    rows whose answer is a JSON object holding an equal value there, in first-seen field order.

    Validity and equality of the whole answer stay ``score``'s ``json_valid`` and
    ``json_equal``; rows whose reference is no JSON object count for no field.
    """
    field_hits: dict[str, list[bool]] = {}
    for answer, reference in zip(answers, references, strict=True):
        _, reference_value = _parse_json(reference)
        if not isinstance(reference_value, dict):
            continue
        _, answer_value = _parse_json(answer)
        answer_fields = answer_value if isinstance(answer_value, dict) else {}
        for field, expected in reference_value.items():
            hit = field in answer_fields and json_equal(answer_fields[field], expected)
            field_hits.setdefault(field, []).append(hit)
    return {field: sum(hits) / len(hits) for field, hits in field_hits.items()}


@dataclass(frozen=True)
class LabelScore:
    """How well one label is answered; a ratio with nothing to divide by is 0 (sklearn's
    ``zero_division=0``), so a label never answered has precision 0 and one never true recall 0.
    """

    precision: float
    """Of the rows answered with this label, the share whose truth it is."""
    recall: float
    """Of the rows whose truth is this label, the share answered with it."""
    f1: float
    """The harmonic mean of precision and recall; 0 when both are."""
    support: int
    """How many rows have this label as their truth."""


@dataclass(frozen=True)
class LabelMetrics:
    """One system's answers to a label task, scored against the references."""

    labels: tuple[str, ...]
    """Row and column order: the task's labels, then any reference that is none of them."""
    accuracy: float
    """The share of rows whose answer names their true label."""
    per_label: dict[str, LabelScore]
    """Every label's scores, in ``labels`` order."""
    macro_f1: float
    """The mean F1 over the labels that are some row's truth or some row's answer."""
    confusion: list[list[int]]
    """``confusion[t][a]``: rows whose truth is ``labels[t]`` and whose answer names
    ``labels[a]``; the last column counts answers that name no label."""

    def to_record(self) -> dict[str, object]:
        """The JSON form: labels, accuracy, per-label scores, macro-F1 and the matrix."""
        return {
            "labels": list(self.labels),
            "accuracy": self.accuracy,
            "per_label": {label: asdict(scores) for label, scores in self.per_label.items()},
            "macro_f1": self.macro_f1,
            "confusion": [list(row) for row in self.confusion],
        }


def label_metrics(
    answers: Sequence[str], references: Sequence[str], labels: Sequence[str]
) -> LabelMetrics:
    """Accuracy, per-label scores, macro-F1 and the confusion matrix of ``answers``.

    Answers and references name a label as ``match_answer`` reads them (case and surrounding
    punctuation aside). A reference that names none of ``labels`` becomes a label of its own,
    after them, so every row keeps its truth.
    """
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers for {len(references)} references")
    if not references:
        raise ValueError("label metrics need at least one row")
    known = list(dict.fromkeys(labels))
    truths = []
    for reference in references:
        truth = match_answer(known, reference)
        if truth is None:
            truth = reference.strip()
            known.append(truth)
        truths.append(truth)
    index = {label: position for position, label in enumerate(known)}
    other = len(known)
    confusion = [[0] * (other + 1) for _ in known]
    for answer, truth in zip(answers, truths, strict=True):
        named = match_answer(known, answer)
        confusion[index[truth]][other if named is None else index[named]] += 1
    per_label = {label: _label_score(confusion, index[label]) for label in known}
    # Labels no row has as its truth or its answer say nothing about this set (sklearn's
    # default label set); answers that name no label are no class to average over.
    seen = [
        scores.f1
        for position, scores in enumerate(per_label.values())
        if scores.support or any(row[position] for row in confusion)
    ]
    correct = sum(confusion[position][position] for position in range(other))
    return LabelMetrics(
        labels=tuple(known),
        accuracy=correct / len(references),
        per_label=per_label,
        macro_f1=sum(seen) / len(seen),
        confusion=confusion,
    )


def _label_score(confusion: list[list[int]], position: int) -> LabelScore:
    true_positives = confusion[position][position]
    answered = sum(row[position] for row in confusion)
    support = sum(confusion[position])
    precision = true_positives / answered if answered else 0.0
    recall = true_positives / support if support else 0.0
    total = precision + recall
    f1 = 2 * precision * recall / total if total else 0.0
    return LabelScore(precision=precision, recall=recall, f1=f1, support=support)
