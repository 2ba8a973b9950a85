"""A generated project of many examples, written straight into SQLite with one executemany:
what the tests of paging, filtering and streaming a large dataset start from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from store.clock import now_iso
from store.database import open_database, write_transaction
from store.examples import ChatMessage, content_hash, messages_to_json, prompt_key
from store.projects import create_project

NAME = "big"
"""The generated project's name."""


def ticket(number: int) -> tuple[ChatMessage, ...]:
    """Ticket ``number``: a refund every thousandth, long text every 5,000th, an answer that
    names its number."""
    ask = "Refund my order please" if number % 1000 == 0 else "The app is slow today"
    detail = " and it keeps happening" * (40 if number % 5000 == 0 else 1)
    return (
        ChatMessage("user", f"Ticket {number}: {ask}{detail}"),
        ChatMessage("assistant", f"answer {number}"),
    )


def write_big_project(path: Path, rows: int) -> Path:
    """A database at ``path`` with the project ``big`` of ``rows`` examples 1..rows: status by
    number mod 3 (approved, pending, rejected), every tenth in eval."""
    db = open_database(path)
    project = create_project(db, NAME)
    with write_transaction(db):
        db.conn.executemany(
            "INSERT INTO examples (project_id, messages, content_hash, prompt_key, source,"
            " status, split, tags, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _rows(project.id, rows),
        )
    db.close()
    return path


def _rows(project_id: int, rows: int) -> Iterator[tuple[object, ...]]:
    timestamp = now_iso()
    for number in range(1, rows + 1):
        messages = ticket(number)
        yield (
            project_id,
            json.dumps(messages_to_json(messages), ensure_ascii=False),
            content_hash(messages),
            prompt_key(messages),
            "imported",
            ("approved", "pending", "rejected")[number % 3],
            "eval" if number % 10 == 0 else "train",
            "[]",
            timestamp,
            timestamp,
        )
