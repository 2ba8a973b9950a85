"""The store's guarantees: schema migrations, WAL, private files, foreign keys, history."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.database import open_database, write_transaction
from store.errors import InputError, NotFoundError
from store.examples import (
    ChatMessage,
    NewExample,
    add_examples,
    auto_split,
    content_hash,
    example_history,
    get_example,
    list_examples,
    prompt_response,
    remove_example,
    update_example,
)
from store.projects import DEFAULT_BASE_MODEL, create_project, get_project, list_projects
from store.schema import MIGRATIONS


def test_migrations_apply_once_and_reopen_safely(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    first = open_database(db_path)
    applied = [m.name for m in MIGRATIONS.applied(first)]
    first.close()
    second = open_database(db_path)
    assert [m.name for m in MIGRATIONS.applied(second)] == applied
    assert applied == [
        "m001_initial",
        "m002_prompt_votes",
        "m003_unlabeled_examples",
        "m004_few_shot_eval_items",
        "m005_example_pages",
        "m006_judged_eval_items",
        "m007_validated_runs",
        "m008_run_costs",
    ]
    assert MIGRATIONS.pending(second) == []
    assert {
        "projects",
        "messages",
        "examples",
        "runs",
        "run_metrics",
        "evals",
        "eval_items",
        "prompt_votes",
    } <= set(second.table_names())


def test_database_is_wal_private_with_foreign_keys(tmp_path: Path) -> None:
    db_path = tmp_path / "home" / "t.db"
    db = open_database(db_path)
    project = create_project(db, "p")
    add_examples(db, project.id, [prompt_response("q", "a")], source="typed")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
    wal_path = Path(f"{db_path}-wal")
    assert wal_path.exists()
    assert stat.S_IMODE(wal_path.stat().st_mode) == 0o600
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO messages (project_id, role, content, created_at)"
            " VALUES (999, 'u', 'x', '')"
        )


def test_database_file_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        db_path = tmp_path / "t.db"
        open_database(db_path).close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_nothing_is_created_at_import_time(tmp_path: Path) -> None:
    home = tmp_path / "home"
    code = "import store.database, store.examples, store.imports, store.projects, tui.cli.main"
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env={**os.environ, "TUNESMITH_HOME": str(home)},
    )
    assert not home.exists()


def test_projects_are_unique_and_validated(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    created = create_project(db, "support", system_prompt="Answer in JSON.")
    assert created.base_model == DEFAULT_BASE_MODEL
    assert get_project(db, "support") == created
    with pytest.raises(InputError, match="already exists"):
        create_project(db, "support")
    with pytest.raises(InputError, match="project name"):
        create_project(db, "../escape")
    with pytest.raises(NotFoundError, match="projects: support"):
        get_project(db, "missing")
    assert [p.name for p in list_projects(db)] == ["support"]


def test_duplicates_are_skipped_and_split_is_stable(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "p")
    rows = [prompt_response(f"question {i}", f"answer {i}") for i in range(200)]
    first = add_examples(db, project.id, rows, source="imported")
    again = add_examples(db, project.id, rows, source="imported")
    assert (first.added, first.duplicates) == (200, 0)
    assert (again.added, again.duplicates) == (0, 200)
    assert 15 <= first.eval <= 45, "auto should hold out roughly 15%"
    stored = {e.content_hash: e.split for e in list_examples(db, project.id)}
    assert all(split == auto_split(digest) for digest, split in stored.items())


def test_rows_keep_their_order_and_are_counted_by_split_across_batches(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "p")
    # More rows than one batch, splits mixed, duplicates within the call and of earlier rows.
    add_examples(db, project.id, [prompt_response("q 7", "a")], source="typed")
    rows = [
        NewExample(
            prompt_response(f"q {n % 2400}", "a").messages, split=("train", "eval")[n % 3 % 2]
        )
        for n in range(2500)
    ]
    result = add_examples(db, project.id, rows, source="imported")
    stored = list_examples(db, project.id)
    assert [e.prompt for e in stored[1:4]] == ["q 0", "q 1", "q 2"]
    assert [e.prompt for e in stored[1:]] == [f"q {n}" for n in range(2400) if n != 7]
    assert (result.added, result.duplicates) == (2399, 101)
    assert (result.train, result.eval) == (
        sum(e.split == "train" for e in stored[1:]),
        sum(e.split == "eval" for e in stored[1:]),
    )
    # What the cache was before the write, it is after.
    assert db.execute("PRAGMA cache_size").fetchone()[0] == -2000


def test_a_failed_multi_row_write_leaves_nothing(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "p")

    def rows_then_failure() -> Iterator[NewExample]:
        yield prompt_response("one", "1")
        yield prompt_response("two", "2")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        add_examples(db, project.id, rows_then_failure(), source="imported")
    assert list_examples(db, project.id) == []
    assert not db.conn.in_transaction


def test_edits_and_removal_keep_history(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "p")
    add_examples(db, project.id, [prompt_response("q", "first")], source="typed")
    (example,) = list_examples(db, project.id)
    edited_messages = (ChatMessage("user", "q"), ChatMessage("assistant", "second"))
    edited = update_example(db, example.id, messages=edited_messages, status="rejected")
    assert edited.version == 2
    assert edited.response == "second"
    assert edited.content_hash == content_hash(edited_messages)
    removed = remove_example(db, example.id)
    assert removed.deleted_at is not None
    assert list_examples(db, project.id) == []
    history = example_history(db, example.id)
    assert [(v.version, v.messages[-1].content, v.status) for v in history] == [
        (1, "first", "approved"),
        (2, "second", "rejected"),
    ]
    with pytest.raises(NotFoundError, match="was removed"):
        update_example(db, example.id, status="approved")
    # A removed conversation may be added again as a new row.
    assert add_examples(db, project.id, [prompt_response("q", "second")], source="typed").added == 1
    assert get_example(db, example.id).deleted_at is not None


def test_write_transaction_waits_for_another_writer(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    reader_writer = open_database(db_path)
    other = open_database(db_path)
    project = create_project(reader_writer, "p")
    with write_transaction(other):
        other.execute("UPDATE projects SET system_prompt = 'x'")
        # A second IMMEDIATE writer cannot start while the first holds the lock.
        reader_writer.execute("PRAGMA busy_timeout = 50")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            add_examples(reader_writer, project.id, [prompt_response("q", "a")], source="typed")
    result = add_examples(reader_writer, project.id, [prompt_response("q", "a")], source="typed")
    assert result.added == 1


def test_a_relaunched_run_is_back_at_its_checkpoint_step(tmp_path: Path) -> None:
    from store.runs import (
        RunMetric,
        create_run,
        finish_run,
        get_run,
        mark_started,
        record_step,
        set_checkpoint,
        set_launched,
    )

    db = open_database(tmp_path / "t.db")
    project = create_project(db, "p")
    run = create_run(
        db, project.id, config={}, dataset_hash="0" * 64, dataset_size=4, runs_root=tmp_path
    )
    mark_started(db, run.id, pid=1)
    for step in (1, 2, 3, 4, 5, 6, 7):
        record_step(db, RunMetric(run.id, step, None, 1.0, None, None, None, None, None, None, "t"))
        if step == 5:
            set_checkpoint(db, run.id, 5)
    finish_run(db, run.id, "interrupted", error="killed")
    assert get_run(db, run.id).current_step == 7

    set_launched(db, run.id, pid=2)
    relaunched = get_run(db, run.id)
    assert (relaunched.status, relaunched.current_step, relaunched.pid) == ("queued", 5, 2)
    # A process that already runs keeps the step it logged.
    mark_started(db, run.id, pid=2)
    record_step(db, RunMetric(run.id, 6, None, 1.0, None, None, None, None, None, None, "t"))
    set_launched(db, run.id, pid=2)
    assert get_run(db, run.id).current_step == 6


def test_prompt_votes_count_per_run_and_refuse_other_preferences(tmp_path: Path) -> None:
    from store.evals import PromptVote, add_prompt_vote, prompt_vote_counts
    from store.runs import create_run

    db = open_database(tmp_path / "t.db")
    project = create_project(db, "p")
    run = create_run(
        db, project.id, config={}, dataset_hash="0" * 64, dataset_size=4, runs_root=tmp_path
    )
    for preference in ("tuned", "tuned", "tie"):
        add_prompt_vote(db, PromptVote(project.id, run.id, "q", "b", "t", preference))
    assert prompt_vote_counts(db, run.id) == {"base": 0, "tuned": 2, "tie": 1}
    with pytest.raises(InputError, match="preference: 'left' is not one of base, tuned, tie"):
        add_prompt_vote(db, PromptVote(project.id, run.id, "q", "b", "t", "left"))  # type: ignore[arg-type]
    assert prompt_vote_counts(db, run.id)["tuned"] == 2
