"""Rows without an answer: stored pending, never approved, proposals kept, answers versioned."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlite_utils

from store.database import open_database
from store.errors import InputError, NotFoundError
from store.example_edits import ExampleUpdate, restore_examples, update_examples
from store.examples import (
    add_examples,
    get_example,
    give_answer,
    list_examples,
    prompt_response,
    set_proposal,
    unlabeled_example,
    unlabeled_examples,
    update_example,
)
from store.projects import create_project


def _project_with_rows(tmp_path: Path) -> tuple[sqlite_utils.Database, int]:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "tickets")
    add_examples(db, project.id, [prompt_response("refund me", "billing")], source="typed")
    inputs = ["my card was charged twice", "the app crashes", "reset my password"]
    add_examples(
        db,
        project.id,
        [unlabeled_example(text) for text in inputs],
        source="imported",
        status="pending",
    )
    return db, project.id


def test_unlabeled_rows_are_pending_with_no_answer(tmp_path: Path) -> None:
    db, project_id = _project_with_rows(tmp_path)
    rows = unlabeled_examples(db, project_id)
    assert [row.prompt for row in rows] == [
        "my card was charged twice",
        "the app crashes",
        "reset my password",
    ]
    assert all(not row.answered and row.response == "" and row.status == "pending" for row in rows)
    assert [e.answered for e in list_examples(db, project_id)] == [True, False, False, False]


def test_an_unanswered_row_cannot_be_approved(tmp_path: Path) -> None:
    db, project_id = _project_with_rows(tmp_path)
    row = unlabeled_examples(db, project_id)[0]
    with pytest.raises(InputError, match=f"example {row.id} has no answer yet"):
        update_example(db, row.id, status="approved")
    with pytest.raises(InputError, match="no answer yet"):
        update_examples(db, [ExampleUpdate(row.id, status="approved")])
    with pytest.raises(InputError, match="no answer yet"):
        add_examples(db, project_id, [unlabeled_example("new one")], source="imported")
    assert get_example(db, row.id).status == "pending"


def test_proposals_are_stored_and_order_the_queue(tmp_path: Path) -> None:
    db, project_id = _project_with_rows(tmp_path)
    first, second, third = unlabeled_examples(db, project_id)
    set_proposal(db, first.id, "billing", 0.9, "base")
    set_proposal(db, third.id, "account", 0.4, "run-2")
    queue = unlabeled_examples(db, project_id)
    assert [row.id for row in queue] == [third.id, first.id, second.id]
    assert (queue[0].proposed, queue[0].confidence, queue[0].proposed_by) == (
        "account",
        0.4,
        "run-2",
    )
    assert [r.id for r in unlabeled_examples(db, project_id, unproposed_only=True)] == [second.id]
    with pytest.raises(InputError, match=r"within 0\.\.1"):
        set_proposal(db, second.id, "bug", 1.2, "base")
    with pytest.raises(NotFoundError):
        set_proposal(db, 999, "bug", 0.5, "base")


def test_giving_an_answer_approves_it_as_labelled_and_undo_brings_the_row_back(
    tmp_path: Path,
) -> None:
    db, project_id = _project_with_rows(tmp_path)
    row = unlabeled_examples(db, project_id)[0]
    set_proposal(db, row.id, "billing", 0.7, "base")
    labelled = give_answer(db, row.id, "billing")
    assert (labelled.status, labelled.source, labelled.response) == (
        "approved",
        "labelled",
        "billing",
    )
    assert labelled.proposed == "billing" and labelled.version == row.version + 1
    assert row.id not in [r.id for r in unlabeled_examples(db, project_id)]
    # A correction replaces the answer; the history keeps each step.
    corrected = give_answer(db, row.id, "account")
    assert corrected.response == "account"
    restore_examples(db, [row])
    back = get_example(db, row.id)
    assert (back.answered, back.status, back.source) == (False, "pending", "imported")


def test_giving_an_answer_refuses_a_duplicate_conversation(tmp_path: Path) -> None:
    db, project_id = _project_with_rows(tmp_path)
    add_examples(db, project_id, [prompt_response("the app crashes", "bug")], source="typed")
    row = next(r for r in unlabeled_examples(db, project_id) if r.prompt == "the app crashes")
    with pytest.raises(InputError, match="already has exactly this conversation"):
        give_answer(db, row.id, "bug")
    assert not get_example(db, row.id).answered
