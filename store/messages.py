"""The interview transcript: what the person and the agent said, per project, in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlite_utils

from store.clock import now_iso
from store.errors import InputError

MESSAGE_ROLES = ("user", "assistant")
"""Who can speak in the transcript: the person, or the agent."""


@dataclass(frozen=True)
class TranscriptMessage:
    """One turn of the interview."""

    id: int
    project_id: int
    role: str
    content: str
    created_at: str


def add_message(
    db: sqlite_utils.Database, project_id: int, role: str, content: str
) -> TranscriptMessage:
    """Append a turn to the project's transcript."""
    if role not in MESSAGE_ROLES:
        raise InputError(f"role: {role!r} is not one of {', '.join(MESSAGE_ROLES)}")
    if "\x00" in content:
        raise InputError("a message may not contain a NUL character")
    timestamp = now_iso()
    cursor = db.execute(
        "INSERT INTO messages (project_id, role, content, created_at) VALUES (?, ?, ?, ?)",
        [project_id, role, content, timestamp],
    )
    message_id = cursor.lastrowid
    assert message_id is not None
    return TranscriptMessage(message_id, project_id, role, content, timestamp)


def list_messages(
    db: sqlite_utils.Database, project_id: int, *, last: int | None = None
) -> list[TranscriptMessage]:
    """The project's transcript, oldest first; only the ``last`` turns when given."""
    if last is None:
        rows = db.query("SELECT * FROM messages WHERE project_id = ? ORDER BY id", [project_id])
        return [_message_from_row(row) for row in rows]
    rows = db.query(
        "SELECT * FROM messages WHERE project_id = ? ORDER BY id DESC LIMIT ?",
        [project_id, max(last, 0)],
    )
    return [_message_from_row(row) for row in reversed(list(rows))]


def count_messages(db: sqlite_utils.Database, project_id: int) -> int:
    """How many turns the project's transcript has."""
    row = db.execute("SELECT COUNT(*) FROM messages WHERE project_id = ?", [project_id])
    count: int = row.fetchone()[0]
    return count


def _message_from_row(row: dict[str, Any]) -> TranscriptMessage:
    return TranscriptMessage(
        id=row["id"],
        project_id=row["project_id"],
        role=row["role"],
        content=row["content"],
        created_at=row["created_at"],
    )
