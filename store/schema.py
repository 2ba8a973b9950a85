"""The database schema, as ordered sqlite-utils migrations; append new ones, never edit old ones."""

from __future__ import annotations

import sqlite3

import sqlite_utils

MIGRATIONS = sqlite_utils.Migrations("tunesmith")


def _execute_all(db: sqlite_utils.Database, script: str) -> None:
    """Run each statement of ``script`` inside the migration's transaction.

    ``executescript`` would commit first and break the all-or-nothing migration.
    """
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


@MIGRATIONS()
def m001_initial(db: sqlite_utils.Database) -> None:
    """Projects, interview messages, examples with history, runs, metrics and evaluations.

    Its CHECK lists are the words as released, written out: a word added to
    ``store.vocabulary`` later needs a migration of its own.
    """
    _execute_all(
        db,
        """
        CREATE TABLE projects (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            base_model TEXT NOT NULL,
            system_prompt TEXT,
            task_spec TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX messages_project ON messages(project_id, id);
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
        -- The same conversation is stored once per project among live rows, so re-importing
        -- a file adds nothing, while a removed row may come back.
        CREATE UNIQUE INDEX examples_live_content
            ON examples(project_id, content_hash) WHERE deleted_at IS NULL;
        CREATE INDEX examples_project ON examples(project_id, deleted_at, id);
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
        CREATE INDEX runs_project ON runs(project_id, id);
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
        CREATE INDEX run_metrics_run ON run_metrics(run_id, step);
        CREATE TABLE evals (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            item_count INTEGER NOT NULL DEFAULT 0,
            scores TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        );
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
        CREATE INDEX eval_items_eval ON eval_items(eval_id, id);
        """,  # noqa: E501 (the released text, byte for byte)
    )


@MIGRATIONS()
def m002_prompt_votes(db: sqlite_utils.Database) -> None:
    """Blind A/B votes on prompts typed in Compare (votes on eval rows live on the row)."""
    _execute_all(
        db,
        """
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
        CREATE INDEX prompt_votes_run ON prompt_votes(run_id, id);
        """,
    )


_M003_EXAMPLES = """
CREATE TABLE examples_m003 (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    messages TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('typed', 'imported', 'drafted', 'from-compare', 'labelled')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    split TEXT NOT NULL CHECK (split IN ('train', 'eval')),
    tags TEXT NOT NULL DEFAULT '[]',
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    deleted_at TEXT,
    proposed TEXT,
    confidence REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    proposed_by TEXT
);
INSERT INTO examples_m003 (id, project_id, messages, content_hash, source, status, split, tags,
    version, created_at, updated_at, deleted_at)
    SELECT id, project_id, messages, content_hash, source, status, split, tags,
    version, created_at, updated_at, deleted_at FROM examples;
DROP TABLE examples;
ALTER TABLE examples_m003 RENAME TO examples;
CREATE UNIQUE INDEX examples_live_content
    ON examples(project_id, content_hash) WHERE deleted_at IS NULL;
CREATE INDEX examples_project ON examples(project_id, deleted_at, id);
CREATE INDEX examples_queue ON examples(project_id, confidence) WHERE deleted_at IS NULL
"""  # noqa: E501 (the released text, byte for byte)


@MIGRATIONS(transactional=False)
def m003_unlabeled_examples(db: sqlite_utils.Database) -> None:
    """Examples without an answer yet, a model's proposed answer with its confidence and who
    proposed it, and the source ``labelled`` for answers a person gave to such rows.

    SQLite cannot change a CHECK list in place, so the table is rebuilt, the way SQLite's
    documentation describes: with foreign keys off (the pragma is ignored inside a
    transaction, so this migration runs outside one and opens its own), or dropping the old
    table would delete every example's history through ``ON DELETE CASCADE``.
    """
    if "proposed" in db["examples"].columns_dict:
        # Rebuilt before a crash kept the migration from being recorded.
        return
    db.execute("PRAGMA foreign_keys = OFF")
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            _execute_all(db, _M003_EXAMPLES)
            broken = db.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise sqlite3.IntegrityError(f"foreign keys broken by the rebuild: {broken[:3]}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    finally:
        db.execute("PRAGMA foreign_keys = ON")


@MIGRATIONS()
def m004_few_shot_eval_items(db: sqlite_utils.Database) -> None:
    """Each eval item's answer from the base model shown few-shot examples, and its scores.

    NULL on items stored before: those evaluations had two systems.
    """
    _execute_all(
        db,
        """
        ALTER TABLE eval_items ADD COLUMN few_shot_output TEXT;
        ALTER TABLE eval_items ADD COLUMN few_shot_scores TEXT
        """,
    )


_M005_EXAMPLE_PAGES = """
ALTER TABLE examples ADD COLUMN prompt_key TEXT;
DROP INDEX examples_queue;
CREATE INDEX examples_counts ON examples(project_id, status, split) WHERE deleted_at IS NULL;
CREATE INDEX examples_unanswered ON examples(project_id, confidence IS NULL, confidence)
    WHERE deleted_at IS NULL AND json_extract(messages, '$[#-1].role') != 'assistant';
CREATE INDEX examples_changed ON examples(project_id, updated_at) WHERE deleted_at IS NULL;
CREATE INDEX examples_length ON examples(project_id, length(messages)) WHERE deleted_at IS NULL;
CREATE INDEX examples_prompt ON examples(project_id, prompt_key) WHERE deleted_at IS NULL
"""

_M005_STALE_PROMPT_KEY = """
CREATE TRIGGER examples_prompt_key_stale AFTER UPDATE OF messages ON examples
BEGIN
    UPDATE examples SET prompt_key = NULL WHERE id = NEW.id;
END
"""


@MIGRATIONS()
def m005_example_pages(db: sqlite_utils.Database) -> None:
    """What the Dataset area pages, counts, sorts and flags a million examples by, in SQL.

    Counts by status and split; the rows without an answer, least confident proposal first
    (replacing ``examples_queue``, which held every row); the orders by last change and by
    length; and ``prompt_key``, a hash of each row's prompt with case and spacing ignored, to
    find rows that share a prompt. A row's key is cleared whenever its conversation changes,
    by whichever writer, and the store computes missing keys (rows stored before this
    migration, or changed since) when it next looks for shared prompts.
    """
    _execute_all(db, _M005_EXAMPLE_PAGES)
    # One statement with semicolons inside, which _execute_all would split.
    db.execute(_M005_STALE_PROMPT_KEY)


@MIGRATIONS()
def m006_judged_eval_items(db: sqlite_utils.Database) -> None:
    """Each eval item's verdicts from an LLM judge, by system: a score and its rationale
    (NULL until judged)."""
    db.execute("ALTER TABLE eval_items ADD COLUMN judge TEXT")


@MIGRATIONS()
def m007_validated_runs(db: sqlite_utils.Database) -> None:
    """What a run that validates itself found: each check's task score on the validation
    rows, the step whose checkpoint became the adapter, and why the run stopped where it did."""
    db.execute("ALTER TABLE run_metrics ADD COLUMN validation_score REAL")
    db.execute("ALTER TABLE runs ADD COLUMN best_step INTEGER")
    db.execute("ALTER TABLE runs ADD COLUMN stop_reason TEXT")


@MIGRATIONS()
def m008_run_costs(db: sqlite_utils.Database) -> None:
    """What a run cost, for comparing methods: its trainable parameters and its peak memory
    (bytes: the GPU's allocations on CUDA, else the process's resident set)."""
    db.execute("ALTER TABLE runs ADD COLUMN trainable_parameters INTEGER")
    db.execute("ALTER TABLE runs ADD COLUMN peak_memory INTEGER")
