"""Held-out evaluations of a run: per-item answers of base, few-shot and tuned, and their scores.

An evaluation's ``scores`` JSON holds the mean metrics of ``base`` and ``tuned`` (as since the
first release) and, from the evaluation with three systems on, ``few_shot`` (with ``k``, the
shots shown), ``intervals``, ``mcnemar``, ``labels`` (label tasks), ``json_fields`` (JSON
tasks) and ``forgetting``. Older evaluations read with those absent (None or empty).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import sqlite_utils

from store.clock import now_iso
from store.database import write_transaction
from store.errors import NotFoundError
from store.vocabulary import PREFERENCES, Preference, check_choice

Scores = dict[str, float | None]
"""One system's metrics (of one item, or their means); None where a metric does not apply."""

Interval = tuple[float, float]
"""A 95% interval: low, high."""


@dataclass(frozen=True)
class EvalItem:
    """One eval-split row answered by base, tuned and (from three-system evaluations on) the
    base model shown few-shot examples."""

    example_id: int | None
    prompt: str
    reference: str
    base_output: str
    tuned_output: str
    base_scores: Scores
    tuned_scores: Scores
    few_shot_output: str | None = None
    few_shot_scores: Scores | None = None


@dataclass(frozen=True)
class PairedTest:
    """McNemar's exact test of tuned against another system on one right-or-wrong metric."""

    tuned_only: int
    """Rows tuned got right and the other system wrong."""
    other_only: int
    """Rows the other system got right and tuned wrong."""
    p_value: float


@dataclass(frozen=True)
class LabelReport:
    """A label task's per-label results."""

    labels: tuple[str, ...]
    """Row and column order of the confusion matrices; their last column is "other" (an
    answer that names no label)."""
    per_label: dict[str, dict[str, float]]
    """The tuned model's precision, recall, F1 and support of each label."""
    accuracy: dict[str, float]
    """Each system's share of rows answered with their true label."""
    macro_f1: dict[str, float]
    """Each system's mean F1 over the labels."""
    confusion: dict[str, list[list[int]]]
    """Each system's matrix: rows the truth, columns the answer."""


@dataclass(frozen=True)
class Forgetting:
    """How far the tuned model moved from its base on general prompts."""

    n: int
    """General prompts measured."""
    drift: float
    """Mean per-token negative log-likelihood of the base's own answers under the tuned model
    minus under the base (nats per token; 0 is no change)."""
    verdict: str


@dataclass(frozen=True)
class JudgeVerdict:
    """An LLM judge's verdict on one answer: a score from 0 to 1 and why, or (score None)
    why there is none."""

    score: float | None
    rationale: str


@dataclass(frozen=True)
class JudgeSummary:
    """What an LLM judge made of an evaluation's answers."""

    model: str
    """The judge, as named to people (``gpt-4o-mini at api.openai.com``)."""
    means: dict[str, float]
    """Per system, the mean score of its judged answers (0 to 1)."""
    judged: dict[str, int]
    """Per system, how many of its answers got a score."""
    intervals: dict[str, Interval]
    """Per system and per difference (``tuned_minus_base``, ``tuned_minus_few_shot``): the
    95% paired-bootstrap interval."""


@dataclass(frozen=True)
class Evaluation:
    """A run's evaluation: mean scores of each system over ``n`` items, and how sure they are."""

    id: int
    run_id: int
    n: int
    base: Scores
    tuned: Scores
    created_at: str
    few_shot: Scores | None = None
    """The base model shown ``shots`` approved train examples; None before three systems."""
    shots: int | None = None
    """How many examples the few-shot system was shown (k)."""
    intervals: dict[str, dict[str, Interval]] = field(default_factory=dict)
    """Per system (``base``, ``few_shot``, ``tuned``) and per difference (``tuned_minus_base``,
    ``tuned_minus_few_shot``): each metric's 95% paired-bootstrap interval."""
    mcnemar: dict[str, dict[str, PairedTest]] = field(default_factory=dict)
    """``tuned_vs_base`` and ``tuned_vs_few_shot``: the test of each right-or-wrong metric."""
    labels: LabelReport | None = None
    """Per-label results of a label task; None for other tasks."""
    json_fields: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per system, the accuracy of each top-level field of JSON references."""
    forgetting: Forgetting | None = None
    """Drift on general prompts; None when it was not measured."""
    judge: JudgeSummary | None = None
    """An LLM judge's scores of the answers; None until judged."""

    def scores_record(self) -> dict[str, Any]:
        """The ``scores`` JSON stored for this evaluation."""
        record: dict[str, Any] = {"base": self.base, "tuned": self.tuned}
        if self.few_shot is not None:
            record["few_shot"] = {**self.few_shot, "k": self.shots}
        if self.intervals:
            record["intervals"] = {
                name: {metric: list(bounds) for metric, bounds in metrics.items()}
                for name, metrics in self.intervals.items()
            }
        if self.mcnemar:
            record["mcnemar"] = {
                name: {metric: asdict(test) for metric, test in tests.items()}
                for name, tests in self.mcnemar.items()
            }
        if self.labels is not None:
            record["labels"] = {
                "per_label": self.labels.per_label,
                "accuracy": self.labels.accuracy,
                "macro_f1": self.labels.macro_f1,
                "confusion": {"labels": list(self.labels.labels), **self.labels.confusion},
            }
        if self.json_fields:
            record["json_fields"] = self.json_fields
        if self.forgetting is not None:
            record["forgetting"] = asdict(self.forgetting)
        if self.judge is not None:
            record["judge"] = {
                **asdict(self.judge),
                "intervals": {name: list(bounds) for name, bounds in self.judge.intervals.items()},
            }
        return record


def save_evaluation(
    db: sqlite_utils.Database,
    run_id: int,
    items: list[EvalItem],
    base: Scores,
    tuned: Scores,
    *,
    few_shot: Scores | None = None,
    shots: int | None = None,
    intervals: dict[str, dict[str, Interval]] | None = None,
    mcnemar: dict[str, dict[str, PairedTest]] | None = None,
    labels: LabelReport | None = None,
    json_fields: dict[str, dict[str, float]] | None = None,
    forgetting: Forgetting | None = None,
) -> Evaluation:
    """Store an evaluation and its items in one transaction."""
    timestamp = now_iso()
    unsaved = Evaluation(
        id=0,
        run_id=run_id,
        n=len(items),
        base=base,
        tuned=tuned,
        created_at=timestamp,
        few_shot=few_shot,
        shots=shots,
        intervals=intervals or {},
        mcnemar=mcnemar or {},
        labels=labels,
        json_fields=json_fields or {},
        forgetting=forgetting,
    )
    with write_transaction(db):
        cursor = db.execute(
            "INSERT INTO evals (run_id, item_count, scores, created_at) VALUES (?, ?, ?, ?)",
            [run_id, len(items), json.dumps(unsaved.scores_record()), timestamp],
        )
        eval_id = cursor.lastrowid
        assert eval_id is not None
        for item in items:
            db.execute(
                "INSERT INTO eval_items (eval_id, example_id, prompt, reference, base_output,"
                " tuned_output, base_scores, tuned_scores, few_shot_output, few_shot_scores)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    eval_id,
                    item.example_id,
                    item.prompt,
                    item.reference,
                    item.base_output,
                    item.tuned_output,
                    json.dumps(item.base_scores),
                    json.dumps(item.tuned_scores),
                    item.few_shot_output,
                    None if item.few_shot_scores is None else json.dumps(item.few_shot_scores),
                ],
            )
    return replace(unsaved, id=eval_id)


def latest_evaluation(db: sqlite_utils.Database, run_id: int) -> Evaluation | None:
    """The newest evaluation of a run, if any."""
    rows = list(db.query("SELECT * FROM evals WHERE run_id = ? ORDER BY id DESC LIMIT 1", [run_id]))
    return _evaluation_from_row(rows[0]) if rows else None


def list_evaluations(db: sqlite_utils.Database, run_id: int) -> list[Evaluation]:
    """Every evaluation of a run, oldest first."""
    return [
        _evaluation_from_row(row)
        for row in db.query("SELECT * FROM evals WHERE run_id = ? ORDER BY id", [run_id])
    ]


def _evaluation_from_row(row: dict[str, Any]) -> Evaluation:
    scores: dict[str, Any] = json.loads(row["scores"])
    few_shot = scores.get("few_shot")
    labels = scores.get("labels")
    forgetting = scores.get("forgetting")
    return Evaluation(
        id=row["id"],
        run_id=row["run_id"],
        n=row["item_count"],
        base=scores["base"],
        tuned=scores["tuned"],
        created_at=row["created_at"],
        few_shot=(
            {metric: value for metric, value in few_shot.items() if metric != "k"}
            if few_shot is not None
            else None
        ),
        shots=few_shot.get("k") if few_shot is not None else None,
        intervals={
            name: {metric: (bounds[0], bounds[1]) for metric, bounds in metrics.items()}
            for name, metrics in scores.get("intervals", {}).items()
        },
        mcnemar={
            name: {metric: PairedTest(**test) for metric, test in tests.items()}
            for name, tests in scores.get("mcnemar", {}).items()
        },
        labels=_label_report(labels) if labels is not None else None,
        json_fields=scores.get("json_fields", {}),
        forgetting=Forgetting(**forgetting) if forgetting is not None else None,
        judge=_judge_summary(scores["judge"]) if "judge" in scores else None,
    )


def _judge_summary(record: dict[str, Any]) -> JudgeSummary:
    return JudgeSummary(
        model=record["model"],
        means=record["means"],
        judged=record["judged"],
        intervals={name: (bounds[0], bounds[1]) for name, bounds in record["intervals"].items()},
    )


def _label_report(record: dict[str, Any]) -> LabelReport:
    confusion = dict(record["confusion"])
    order = confusion.pop("labels")
    return LabelReport(
        labels=tuple(order),
        per_label=record["per_label"],
        accuracy=record["accuracy"],
        macro_f1=record["macro_f1"],
        confusion=confusion,
    )


def evaluation_items(db: sqlite_utils.Database, eval_id: int) -> list[EvalItem]:
    """The items of an evaluation, in the order they were answered."""
    return [stored.item for stored in stored_evaluation_items(db, eval_id)]


@dataclass(frozen=True)
class StoredEvalItem:
    """An eval item as stored: its row id and the person's recorded preference, if any."""

    id: int
    eval_id: int
    item: EvalItem
    preference: Preference | None
    judge: dict[str, JudgeVerdict] = field(default_factory=dict)
    """An LLM judge's verdict on each system's answer; empty until judged."""


def stored_evaluation_items(db: sqlite_utils.Database, eval_id: int) -> list[StoredEvalItem]:
    """The items of an evaluation with their ids and preferences, in the order answered."""
    return [
        StoredEvalItem(
            id=row["id"],
            eval_id=row["eval_id"],
            item=EvalItem(
                example_id=row["example_id"],
                prompt=row["prompt"],
                reference=row["reference"],
                base_output=row["base_output"] or "",
                tuned_output=row["tuned_output"] or "",
                base_scores=json.loads(row["base_scores"]),
                tuned_scores=json.loads(row["tuned_scores"]),
                few_shot_output=row["few_shot_output"],
                few_shot_scores=(
                    json.loads(row["few_shot_scores"])
                    if row["few_shot_scores"] is not None
                    else None
                ),
            ),
            preference=row["preference"],
            judge={
                system: JudgeVerdict(**verdict)
                for system, verdict in json.loads(row["judge"] or "{}").items()
            },
        )
        for row in db.query("SELECT * FROM eval_items WHERE eval_id = ? ORDER BY id", [eval_id])
    ]


def save_judgements(
    db: sqlite_utils.Database,
    evaluation: Evaluation,
    verdicts: dict[int, dict[str, JudgeVerdict]],
    summary: JudgeSummary,
) -> Evaluation:
    """Store an LLM judge's verdicts on the items of ``evaluation`` (by item id, then system)
    and its summary, in one transaction, replacing an earlier judge's; return the evaluation
    with the summary."""
    judged = replace(evaluation, judge=summary)
    with write_transaction(db):
        for item_id, by_system in verdicts.items():
            cursor = db.execute(
                "UPDATE eval_items SET judge = ? WHERE id = ? AND eval_id = ?",
                [
                    json.dumps({system: asdict(v) for system, v in by_system.items()}),
                    item_id,
                    evaluation.id,
                ],
            )
            if cursor.rowcount != 1:
                raise NotFoundError(f"evaluation {evaluation.id} has no item {item_id}")
        db.execute(
            "UPDATE evals SET scores = ? WHERE id = ?",
            [json.dumps(judged.scores_record()), evaluation.id],
        )
    return judged


def set_preference(db: sqlite_utils.Database, item_id: int, preference: Preference | None) -> None:
    """Record which answer a person preferred for an eval item (None clears it)."""
    if preference is not None:
        _check_preference(preference)
    cursor = db.execute("UPDATE eval_items SET preference = ? WHERE id = ?", [preference, item_id])
    if not cursor.rowcount:
        raise NotFoundError(f"no eval item with id {item_id}")


@dataclass(frozen=True)
class PromptVote:
    """A blind A/B vote on the answers of base and a tuned run to a prompt the person typed."""

    project_id: int
    run_id: int
    prompt: str
    base_output: str
    tuned_output: str
    preference: Preference


def add_prompt_vote(db: sqlite_utils.Database, vote: PromptVote) -> int:
    """Store a vote on a typed prompt; returns its id."""
    _check_preference(vote.preference)
    cursor = db.execute(
        "INSERT INTO prompt_votes (project_id, run_id, prompt, base_output, tuned_output,"
        " preference, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            vote.project_id,
            vote.run_id,
            vote.prompt,
            vote.base_output,
            vote.tuned_output,
            vote.preference,
            now_iso(),
        ],
    )
    return int(cursor.lastrowid or 0)


def prompt_vote_counts(db: sqlite_utils.Database, run_id: int) -> dict[str, int]:
    """How often each answer of run ``run_id`` was preferred on typed prompts."""
    counts: dict[str, int] = dict.fromkeys(PREFERENCES, 0)
    rows = db.query(
        "SELECT preference, COUNT(*) AS n FROM prompt_votes WHERE run_id = ? GROUP BY preference",
        [run_id],
    )
    for row in rows:
        counts[row["preference"]] = row["n"]
    return counts


def _check_preference(preference: str) -> None:
    check_choice("preference", preference, PREFERENCES)
