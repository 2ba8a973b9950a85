"""The released migrations build exactly the schema they built when released."""

from __future__ import annotations

import sqlite3

import pytest
import sqlite_utils

from store.schema import MIGRATIONS

RELEASED_SCHEMA = """\
-- index eval_items_eval
CREATE INDEX eval_items_eval ON eval_items(eval_id, id);

-- index examples_live_content
CREATE UNIQUE INDEX examples_live_content
            ON examples(project_id, content_hash) WHERE deleted_at IS NULL;

-- index examples_project
CREATE INDEX examples_project ON examples(project_id, deleted_at, id);

-- index messages_project
CREATE INDEX messages_project ON messages(project_id, id);

-- index prompt_votes_run
CREATE INDEX prompt_votes_run ON prompt_votes(run_id, id);

-- index run_metrics_run
CREATE INDEX run_metrics_run ON run_metrics(run_id, step);

-- index runs_project
CREATE INDEX runs_project ON runs(project_id, id);

-- table eval_items
CREATE TABLE eval_items (
            id INTEGER PRIMARY KEY,
            eval_id INTEGER NOT NULL REFERENCES evals(id) ON DELETE CASCADE,
            example_id INTEGER REFERENCES examples(id) ON DELETE SET NULL,
            prompt TEXT NOT NULL,
            reference TEXT NOT NULL,
            base_output TEXT,
            tuned_output TEXT,
            base_scores TEXT NOT NULL DEFAULT '{}',
            tuned_scores TEXT NOT NULL DEFAULT '{}',
            preference TEXT CHECK (preference IN ('base', 'tuned', 'tie'))
        );

-- table evals
CREATE TABLE evals (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            item_count INTEGER NOT NULL DEFAULT 0,
            scores TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );

-- table example_versions
CREATE TABLE example_versions (
            id INTEGER PRIMARY KEY,
            example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
            version INTEGER NOT NULL,
            messages TEXT NOT NULL,
            status TEXT NOT NULL,
            split TEXT NOT NULL,
            tags TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            UNIQUE (example_id, version)
        );

-- table examples
CREATE TABLE examples (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            messages TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('typed', 'imported', 'drafted', 'from-compare')),
            status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
            split TEXT NOT NULL CHECK (split IN ('train', 'eval')),
            tags TEXT NOT NULL DEFAULT '[]',
            version INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            deleted_at TEXT
        );

-- table messages
CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            created_at TEXT NOT NULL
        );

-- table projects
CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            base_model TEXT NOT NULL,
            system_prompt TEXT,
            task_spec TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

-- table prompt_votes
CREATE TABLE prompt_votes (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            prompt TEXT NOT NULL,
            base_output TEXT NOT NULL,
            tuned_output TEXT NOT NULL,
            preference TEXT NOT NULL CHECK (preference IN ('base', 'tuned', 'tie')),
            created_at TEXT NOT NULL
        );

-- table run_metrics
CREATE TABLE run_metrics (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            step INTEGER NOT NULL,
            epoch REAL,
            loss REAL,
            eval_loss REAL,
            learning_rate REAL,
            grad_norm REAL,
            tokens INTEGER,
            tokens_per_second REAL,
            eta_seconds REAL,
            recorded_at TEXT NOT NULL
        );

-- table runs
CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'stopped', 'interrupted')),
            config TEXT NOT NULL DEFAULT '{}',
            dataset_hash TEXT,
            dataset_size INTEGER,
            pid INTEGER,
            current_step INTEGER NOT NULL DEFAULT 0,
            max_steps INTEGER,
            checkpoint_step INTEGER,
            run_dir TEXT,
            log_path TEXT,
            adapter_path TEXT,
            error TEXT,
            created_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            updated_at TEXT NOT NULL
        );
"""  # noqa: E501 (the released text, byte for byte)
"""``sqlite_master`` of a fresh database after m001 and m002, as those migrations were released."""


def schema_text(db: sqlite_utils.Database) -> str:
    """Every table and index of ``db`` but the migrations' own, as one text in a stable order."""
    rows = db.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE '%sqlite_migrations%'"
        " AND sql IS NOT NULL ORDER BY type, name"
    ).fetchall()
    return "\n".join(f"-- {kind} {name}\n{sql};\n" for kind, name, sql in rows)


def test_a_fresh_database_has_the_released_schema_byte_for_byte() -> None:
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db, stop_before="m003_unlabeled_examples")
    assert schema_text(db) == RELEASED_SCHEMA


def test_the_migrations_apply_in_order() -> None:
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db)
    applied = [row[0] for row in db.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
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


def _database_at_m002() -> sqlite_utils.Database:
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db, stop_before="m003_unlabeled_examples")
    db.execute(
        "INSERT INTO projects (name, base_model, created_at, updated_at)"
        " VALUES ('tickets', 'm', 't', 't')"
    )
    for number in (1, 2):
        db.execute(
            "INSERT INTO examples (project_id, messages, content_hash, source, status, split,"
            " created_at, updated_at) VALUES (1, ?, ?, 'typed', 'approved', 'train', 't', 't')",
            [f'[{{"role": "user", "content": "q{number}"}}]', f"h{number}"],
        )
    db.execute(
        "INSERT INTO example_versions (example_id, version, messages, status, split, tags,"
        " recorded_at) VALUES (1, 1, '[]', 'approved', 'train', '[]', 't')"
    )
    db.conn.commit()
    return db


def test_m003_keeps_every_example_and_its_history() -> None:
    db = _database_at_m002()
    before = [dict(row) for row in db.query("SELECT * FROM examples ORDER BY id")]
    MIGRATIONS.apply(db)
    after = [dict(row) for row in db.query("SELECT * FROM examples ORDER BY id")]
    assert [{k: row[k] for k in before[0]} for row in after] == before
    assert {(row["proposed"], row["confidence"], row["proposed_by"]) for row in after} == {
        (None, None, None)
    }
    assert db.execute("SELECT count(*) FROM example_versions").fetchone()[0] == 1
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    # The new source is allowed; a confidence out of 0..1 is not.
    db.execute("UPDATE examples SET source = 'labelled' WHERE id = 1")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE examples SET confidence = 1.5 WHERE id = 1")


def test_m003_after_a_crash_before_it_was_recorded_is_not_run_twice() -> None:
    db = _database_at_m002()
    MIGRATIONS.apply(db)
    db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm003_unlabeled_examples'")
    db.conn.commit()
    MIGRATIONS.apply(db)
    assert db.execute("SELECT count(*) FROM examples").fetchone()[0] == 2
    assert "m003_unlabeled_examples" in [m.name for m in MIGRATIONS.applied(db)]


def test_m004_gives_eval_items_few_shot_columns_and_keeps_older_items() -> None:
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db, stop_before="m004_few_shot_eval_items")
    db.execute(
        "INSERT INTO projects (name, base_model, created_at, updated_at)"
        " VALUES ('tickets', 'm', 't', 't')"
    )
    db.execute(
        "INSERT INTO runs (project_id, status, created_at, updated_at)"
        " VALUES (1, 'completed', 't', 't')"
    )
    db.execute("INSERT INTO evals (run_id, created_at) VALUES (1, 't')")
    db.execute(
        "INSERT INTO eval_items (eval_id, prompt, reference, base_output, tuned_output)"
        " VALUES (1, 'q', 'a', 'x', 'a')"
    )
    db.conn.commit()
    MIGRATIONS.apply(db)
    applied = [row[0] for row in db.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert applied[3] == "m004_few_shot_eval_items"
    row = dict(next(iter(db.query("SELECT * FROM eval_items"))))
    assert (row["prompt"], row["tuned_output"]) == ("q", "a")
    assert (row["few_shot_output"], row["few_shot_scores"]) == (None, None)


def test_m005_indexes_what_the_dataset_area_asks_and_keys_prompts_later() -> None:
    db = sqlite_utils.Database(memory=True)
    MIGRATIONS.apply(db, stop_before="m005_example_pages")
    db.execute(
        "INSERT INTO projects (name, base_model, created_at, updated_at)"
        " VALUES ('tickets', 'm', 't', 't')"
    )
    db.execute(
        "INSERT INTO examples (project_id, messages, content_hash, source, status, split,"
        " created_at, updated_at) VALUES (1, ?, 'h', 'typed', 'approved', 'train', 't', 't')",
        ['[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]'],
    )
    db.conn.commit()
    MIGRATIONS.apply(db)
    indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {
        "examples_counts",
        "examples_unanswered",
        "examples_changed",
        "examples_length",
        "examples_prompt",
    } <= indexes
    # The unanswered rows' index replaces the queue's, which held every row.
    assert "examples_queue" not in indexes
    # Rows from before have no key yet; any change of a conversation clears the key.
    assert db.execute("SELECT prompt_key FROM examples").fetchone() == (None,)
    db.execute("UPDATE examples SET prompt_key = 'k'")
    db.execute("UPDATE examples SET status = 'rejected'")
    assert db.execute("SELECT prompt_key FROM examples").fetchone() == ("k",)
    db.execute("UPDATE examples SET messages = '[]', prompt_key = 'new'")
    assert db.execute("SELECT prompt_key FROM examples").fetchone() == (None,)
