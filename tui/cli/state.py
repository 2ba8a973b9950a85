"""What every CLI command shares: the database, opened on first use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import sqlite_utils

from store.database import open_database


@dataclass
class CliState:
    """What every command shares: where the database is, opened on first use."""

    db_path: Path
    _db: sqlite_utils.Database | None = None

    def db(self) -> sqlite_utils.Database:
        """The open database (created with its schema on first use)."""
        if self._db is None:
            self._db = open_database(self.db_path)
        return self._db


pass_state = click.make_pass_decorator(CliState)
"""Decorator that hands a command the shared ``CliState``."""
