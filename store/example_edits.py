"""Changes to many examples at once, as the Dataset area makes them, and their undo."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace

import sqlite_utils

from store.clock import now_iso
from store.database import write_transaction
from store.errors import InputError
from store.examples import (
    ChatMessage,
    Example,
    check_approvable,
    content_hash,
    get_example,
    live_duplicate,
    live_example,
    messages_to_json,
    record_version,
    update_example,
    validate_messages,
)
from store.vocabulary import (
    EXAMPLE_SPLITS,
    EXAMPLE_STATUSES,
    ExampleSplit,
    ExampleStatus,
    check_choice,
)


@dataclass(frozen=True)
class ExampleUpdate:
    """A change of status and/or split for one example, as a bulk update takes it."""

    example_id: int
    status: ExampleStatus | None = None
    split: ExampleSplit | None = None


def update_examples(db: sqlite_utils.Database, updates: Iterable[ExampleUpdate]) -> list[Example]:
    """Change the status and/or split of many examples in one transaction, keeping history."""
    updates = list(updates)
    for update in updates:
        if update.status is not None:
            check_choice("status", update.status, EXAMPLE_STATUSES)
        if update.split is not None:
            check_choice("split", update.split, EXAMPLE_SPLITS)
    timestamp = now_iso()
    with write_transaction(db):
        for update in updates:
            current = live_example(db, update.example_id)
            if (update.status or current.status) == "approved":
                check_approvable(current.id, current.messages)
            record_version(db, current)
            db.execute(
                "UPDATE examples SET status = ?, split = ?, version = version + 1,"
                " updated_at = ? WHERE id = ?",
                [
                    update.status or current.status,
                    update.split or current.split,
                    timestamp,
                    update.example_id,
                ],
            )
    return [get_example(db, update.example_id) for update in updates]


def edit_example(
    db: sqlite_utils.Database,
    example_id: int,
    *,
    messages: tuple[ChatMessage, ...],
    tags: tuple[str, ...],
) -> Example:
    """Replace an example's conversation and tags; refuse one another live example already has."""
    messages = validate_messages(messages_to_json(messages))
    current = live_example(db, example_id)
    duplicate = live_duplicate(db, current.project_id, content_hash(messages), example_id)
    if duplicate is not None:
        raise InputError(f"example {duplicate} already has exactly this conversation")
    return update_example(db, example_id, messages=messages, tags=tags)


def remove_examples(db: sqlite_utils.Database, example_ids: Iterable[int]) -> list[Example]:
    """Remove many examples in one transaction; rows and history stay for undo."""
    example_ids = list(example_ids)
    timestamp = now_iso()
    with write_transaction(db):
        for example_id in example_ids:
            record_version(db, live_example(db, example_id))
            db.execute(
                "UPDATE examples SET deleted_at = ?, updated_at = ?, version = version + 1"
                " WHERE id = ?",
                [timestamp, timestamp, example_id],
            )
    return [get_example(db, example_id) for example_id in example_ids]


def restore_example(db: sqlite_utils.Database, example_id: int) -> Example:
    """Bring a removed example back as it was when removed."""
    removed = get_example(db, example_id)
    if removed.deleted_at is None:
        raise InputError(f"example {example_id} was not removed")
    return restore_examples(db, [replace(removed, deleted_at=None)])[0]


def restore_examples(db: sqlite_utils.Database, earlier: Iterable[Example]) -> list[Example]:
    """Put examples back to the given earlier states (content, source, status, split, tags,
    removed or not) in one transaction, each change kept in the history: the undo of any edit."""
    earlier = list(earlier)
    timestamp = now_iso()
    with write_transaction(db):
        for before in earlier:
            current = get_example(db, before.id)
            digest = content_hash(before.messages)
            if before.deleted_at is None:
                duplicate = live_duplicate(db, current.project_id, digest, before.id)
                if duplicate is not None:
                    raise InputError(
                        f"cannot bring back example {before.id}: "
                        f"example {duplicate} now has the same conversation"
                    )
            record_version(db, current)
            db.execute(
                "UPDATE examples SET messages = ?, content_hash = ?, source = ?, status = ?,"
                " split = ?, tags = ?, deleted_at = ?, version = version + 1, updated_at = ?"
                " WHERE id = ?",
                [
                    json.dumps(messages_to_json(before.messages), ensure_ascii=False),
                    digest,
                    before.source,
                    before.status,
                    before.split,
                    json.dumps(list(before.tags), ensure_ascii=False),
                    before.deleted_at,
                    timestamp,
                    before.id,
                ],
            )
    return [get_example(db, before.id) for before in earlier]
