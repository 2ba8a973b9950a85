"""Opening the one SQLite file: WAL, foreign keys, a busy timeout, private from creation."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from store.errors import TunesmithError
from store.paths import ensure_private_dir
from store.schema import MIGRATIONS

BUSY_TIMEOUT_SECONDS = 30.0
"""How long a writer waits for another process's lock before giving up."""


def open_database(path: Path) -> sqlite_utils.Database:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    path = path.expanduser()
    if path.is_dir():
        raise TunesmithError(f"{path}: is a folder, not a database file", title="Database")
    if not path.parent.exists():
        ensure_private_dir(path.parent)
    # Create the file ourselves so it is 0600 from its first byte; SQLite gives the -wal and
    # -shm files the same mode as the database file.
    if not path.exists():
        descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(descriptor)
    try:
        # isolation_level=None: single statements autocommit; multi-row writes use
        # write_transaction(), so no transaction is ever left open by accident.
        connection = sqlite3.connect(
            str(path),
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        db = sqlite_utils.Database(connection)
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        db.execute("PRAGMA foreign_keys = ON")
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        MIGRATIONS.apply(db)
    except sqlite3.DatabaseError as error:
        raise TunesmithError(f"{path}: cannot open database: {error}", title="Database") from error
    return db


@contextlib.contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """Run a multi-row write as one ``BEGIN IMMEDIATE`` transaction: all of it or none of it.

    IMMEDIATE takes the write lock up front, so a concurrent writer waits on the busy timeout
    instead of failing with "database is locked" when a read transaction tries to upgrade.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
