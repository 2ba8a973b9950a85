"""Imports under real faults: ``tunesmith examples import`` killed with -9 at random moments, and
a database file that cannot grow."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlite_utils
from click.testing import CliRunner

from store.database import open_database
from store.examples import add_examples, list_examples, prompt_response
from store.projects import create_project
from tests.reliability.harness import integrity_ok, kill_if_running
from tests.reliability.scorecard import Scorecard
from tui.cli import state as cli_state
from tui.cli.main import cli

ROWS_PER_FILE = 30_000
"""Rows of each imported file: enough that parsing and writing take about a second."""
KILLS = 8
EARLIER_ROWS = 200
SEED = 20_240_601
TUNESMITH = [sys.executable, "-c", "from tui.cli.main import main; main()"]


def big_file(folder: Path, attempt: int) -> Path:
    """A chat-format JSONL file whose rows all name ``attempt``, so they can be counted."""
    path = folder / f"attempt-{attempt}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for row in range(ROWS_PER_FILE):
            messages = [
                {"role": "user", "content": f"[attempt-{attempt}] What is {row} squared?"},
                {"role": "assistant", "content": str(row * row)},
            ]
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path


def rows_of_attempt(db_path: Path, attempt: int) -> int:
    """Committed rows of one attempt's file, as a fresh connection sees them."""
    connection = sqlite3.connect(db_path)
    try:
        pattern = f"%[attempt-{attempt}]%"
        (count,) = connection.execute(
            "SELECT COUNT(*) FROM examples WHERE messages LIKE ?", [pattern]
        ).fetchone()
        return int(count)
    finally:
        connection.close()


def wait_for_write_lock(db_path: Path, process: subprocess.Popen[bytes]) -> bool:
    """Wait until another connection holds the write lock (the import's transaction)."""
    connection = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return True
            connection.execute("ROLLBACK")
            time.sleep(0.002)
        return False
    finally:
        connection.close()


def earlier_rows(db_path: Path) -> list[tuple[int, str, str]]:
    """The first EARLIER_ROWS examples as (id, hash, messages), as a fresh connection sees them."""
    connection = sqlite3.connect(db_path)
    try:
        return connection.execute(
            "SELECT id, content_hash, messages FROM examples ORDER BY id LIMIT ?", [EARLIER_ROWS]
        ).fetchall()
    finally:
        connection.close()


@pytest.mark.reliability_slow
def test_kill_9_during_imports_keeps_all_of_a_file_or_none(
    tmp_path: Path, scorecard: Scorecard
) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "big")
    earlier = [
        prompt_response(f"Earlier question {i}?", f"Earlier answer {i}.")
        for i in range(EARLIER_ROWS)
    ]
    add_examples(db, project.id, earlier, source="imported")
    db.conn.close()
    before = earlier_rows(db_path)
    chooser = random.Random(SEED)
    mid_transaction_kills = 0

    for attempt in range(KILLS):
        path = big_file(tmp_path, attempt)
        how = "at a random moment" if attempt % 2 == 0 else "inside the write transaction"
        with scorecard.fault(f"kill -9 of an import of {ROWS_PER_FILE} rows {how}"):
            process = subprocess.Popen(
                [*TUNESMITH, "--db", str(db_path), "examples", "import", "big", str(path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                if attempt % 2 == 0:
                    time.sleep(chooser.uniform(0.2, 2.0))
                elif wait_for_write_lock(db_path, process):
                    time.sleep(chooser.uniform(0.0, 0.1))
                    mid_transaction_kills += process.poll() is None
            finally:
                kill_if_running(process)
            kept = rows_of_attempt(db_path, attempt)
            assert kept in (0, ROWS_PER_FILE), f"attempt {attempt}: {kept} rows of the file"
            assert integrity_ok(db_path)
            intact = len(set(earlier_rows(db_path)) & set(before))
            scorecard.rows(
                "earlier rows after kill -9 of an import", expected=EARLIER_ROWS, kept=intact
            )
            assert intact == EARLIER_ROWS
        path.unlink()

    # At least one kill landed while the import was writing, not just before or after it.
    assert mid_transaction_kills >= 1
    # Unkilled, the same command imports every row of a file.
    last = big_file(tmp_path, KILLS)
    finished = subprocess.run(
        [*TUNESMITH, "--db", str(db_path), "examples", "import", "big", str(last)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    scorecard.rows(
        "rows of an import that was not killed",
        expected=ROWS_PER_FILE,
        kept=rows_of_attempt(db_path, KILLS),
    )
    assert rows_of_attempt(db_path, KILLS) == ROWS_PER_FILE


def test_a_database_that_cannot_grow_fails_an_import_in_one_line(
    tmp_path: Path, scorecard: Scorecard, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "big")
    add_examples(db, project.id, [prompt_response("Kept?", "Kept.")], source="typed")
    db.conn.close()
    path = big_file(tmp_path, 0)

    def size_limited(opened_path: Path) -> sqlite_utils.Database:
        """The database, allowed only a few more pages: SQLite then reports it full."""
        opened = open_database(opened_path)
        (pages,) = opened.execute("PRAGMA page_count").fetchone()
        opened.execute(f"PRAGMA max_page_count = {pages + 4}")
        return opened

    monkeypatch.setattr(cli_state, "open_database", size_limited)
    with scorecard.fault("database file full during an import"):
        result = CliRunner().invoke(
            cli, ["--db", str(db_path), "examples", "import", "big", str(path)]
        )
        assert result.exit_code == 1
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert result.stderr == f"Error: {db_path}: database or disk is full\n"
        assert rows_of_attempt(db_path, 0) == 0
        assert integrity_ok(db_path)
        db = open_database(db_path)
        kept = [e.prompt for e in list_examples(db, project.id)]
        scorecard.rows(
            "rows already stored when the database filled up", expected=1, kept=len(kept)
        )
        assert kept == ["Kept?"]
