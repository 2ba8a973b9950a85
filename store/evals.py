"""Held-out evaluations of a run: per-item base and tuned answers, and their scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from store.clock import now_iso
from store.database import write_transaction
from store.errors import NotFoundError
from store.vocabulary import PREFERENCES, Preference, check_choice


@dataclass(frozen=True)
class EvalItem:
    """One eval-split row answered by base and tuned."""

    example_id: int | None
    prompt: str
    reference: str
    base_output: str
    tuned_output: str
    base_scores: dict[str, float | None]
    tuned_scores: dict[str, float | None]


@dataclass(frozen=True)
class Evaluation:
    """A run's evaluation: mean scores of base and tuned over ``n`` items."""

    id: int
    run_id: int
    n: int
    base: dict[str, float | None]
    tuned: dict[str, float | None]
    created_at: str


def save_evaluation(
    db: sqlite_utils.Database,
    run_id: int,
    items: list[EvalItem],
    base: dict[str, float | None],
    tuned: dict[str, float | None],
) -> Evaluation:
    """Store an evaluation and its items in one transaction."""
    timestamp = now_iso()
    with write_transaction(db):
        cursor = db.execute(
            "INSERT INTO evals (run_id, item_count, scores, created_at) VALUES (?, ?, ?, ?)",
            [run_id, len(items), json.dumps({"base": base, "tuned": tuned}), timestamp],
        )
        eval_id = cursor.lastrowid
        assert eval_id is not None
        for item in items:
            db.execute(
                "INSERT INTO eval_items (eval_id, example_id, prompt, reference, base_output,"
                " tuned_output, base_scores, tuned_scores) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    eval_id,
                    item.example_id,
                    item.prompt,
                    item.reference,
                    item.base_output,
                    item.tuned_output,
                    json.dumps(item.base_scores),
                    json.dumps(item.tuned_scores),
                ],
            )
    return Evaluation(eval_id, run_id, len(items), base, tuned, timestamp)


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
    return Evaluation(
        id=row["id"],
        run_id=row["run_id"],
        n=row["item_count"],
        base=scores["base"],
        tuned=scores["tuned"],
        created_at=row["created_at"],
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
            ),
            preference=row["preference"],
        )
        for row in db.query("SELECT * FROM eval_items WHERE eval_id = ? ORDER BY id", [eval_id])
    ]


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
