"""The store functions the app's areas added: bulk changes in one transaction, undo through
the history, duplicate-safe edits, and blind A/B preferences on eval items."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import sqlite_utils

from store.database import open_database
from store.errors import InputError, NotFoundError
from store.evals import EvalItem, save_evaluation, set_preference, stored_evaluation_items
from store.example_edits import (
    ExampleUpdate,
    edit_example,
    remove_examples,
    restore_example,
    restore_examples,
    update_examples,
)
from store.examples import (
    ChatMessage,
    add_examples,
    example_history,
    get_example,
    list_examples,
    prompt_response,
)
from store.paths import ensure_private_dir
from store.projects import create_project
from store.runs import create_run


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    """A project with three approved train examples."""
    database = open_database(tmp_path / "t.db")
    project = create_project(database, "p")
    add_examples(
        database,
        project.id,
        [prompt_response(f"q{i}", f"a{i}") for i in range(3)],
        source="typed",
        split_mode="train",
    )
    return database


def test_bulk_updates_keep_each_earlier_version(db: sqlite_utils.Database) -> None:
    changed = update_examples(
        db, [ExampleUpdate(1, status="rejected"), ExampleUpdate(2, split="eval")]
    )
    assert [(e.status, e.split, e.version) for e in changed] == [
        ("rejected", "train", 2),
        ("approved", "eval", 2),
    ]
    assert [v.status for v in example_history(db, 1)] == ["approved"]
    with pytest.raises(InputError, match="status: 'maybe'"):
        update_examples(db, [ExampleUpdate(3, status="maybe")])  # type: ignore[arg-type]


def test_a_failing_bulk_update_changes_nothing(db: sqlite_utils.Database) -> None:
    remove_examples(db, [3])
    with pytest.raises(NotFoundError, match="example 3 was removed"):
        update_examples(db, [ExampleUpdate(1, status="rejected"), ExampleUpdate(3, split="eval")])
    assert get_example(db, 1).status == "approved"


def test_restore_undoes_removal_and_edits(db: sqlite_utils.Database) -> None:
    before = list_examples(db, 1)
    removed = remove_examples(db, [1, 2])
    assert all(e.deleted_at for e in removed) and len(list_examples(db, 1)) == 1
    edit_example(
        db, 3, messages=(ChatMessage("user", "q3"), ChatMessage("assistant", "new")), tags=("t",)
    )
    restored = restore_examples(db, before)
    assert [(e.prompt, e.response, e.tags, e.deleted_at) for e in restored] == [
        ("q0", "a0", (), None),
        ("q1", "a1", (), None),
        ("q2", "a2", (), None),
    ]
    assert [v.version for v in example_history(db, 3)] == [1, 2]
    remove_examples(db, [2])
    assert restore_example(db, 2).deleted_at is None
    with pytest.raises(InputError, match="was not removed"):
        restore_example(db, 2)


def test_edits_and_restores_refuse_a_duplicate(db: sqlite_utils.Database) -> None:
    copy_of_first = (ChatMessage("user", "q0"), ChatMessage("assistant", "a0"))
    with pytest.raises(InputError, match="example 1 already has exactly this conversation"):
        edit_example(db, 2, messages=copy_of_first, tags=())
    removed = remove_examples(db, [1])[0]
    add_examples(db, 1, [prompt_response("q0", "a0")], source="typed")
    with pytest.raises(InputError, match="example 4 now has the same conversation"):
        restore_examples(db, [replace(removed, deleted_at=None)])


def test_preferences_are_stored_per_eval_item(db: sqlite_utils.Database, tmp_path: Path) -> None:
    run = create_run(
        db,
        1,
        config={},
        dataset_hash="0",
        dataset_size=3,
        runs_root=ensure_private_dir(tmp_path / "runs"),
    )
    item = EvalItem(1, "q0", "a0", "x", "a0", {}, {})
    evaluation = save_evaluation(db, run.id, [item, item], {}, {})
    first, second = stored_evaluation_items(db, evaluation.id)
    assert first.item == item and first.preference is None
    set_preference(db, first.id, "tuned")
    set_preference(db, second.id, "tie")
    set_preference(db, second.id, None)
    assert [s.preference for s in stored_evaluation_items(db, evaluation.id)] == ["tuned", None]
    with pytest.raises(InputError, match="preference: 'both'"):
        set_preference(db, first.id, "both")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="no eval item with id 99"):
        set_preference(db, 99, "base")
