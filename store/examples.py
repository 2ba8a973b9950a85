"""Examples: chat-format training rows with status, split, tags and an edit history."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import sqlite_utils

from store.clock import now_iso
from store.database import write_transaction
from store.errors import InputError, NotFoundError
from store.vocabulary import (
    EXAMPLE_SOURCES,
    EXAMPLE_SPLITS,
    EXAMPLE_STATUSES,
    ExampleSource,
    ExampleSplit,
    ExampleStatus,
    check_choice,
)

ROLES = ("system", "user", "assistant")
MAX_CONTENT_CHARS = 100_000
"""Longest message text accepted; longer text is almost always a broken file."""
EVAL_PERCENT = 15
"""Share of rows that ``--split auto`` holds out for evaluation."""
INSERT_BATCH = 1000
"""Rows ``add_examples`` hands SQLite at once: few enough to hold, many enough to be fast."""
IMPORT_CACHE_KIB = 64 * 1024
"""SQLite's page cache while ``add_examples`` writes, in KiB (its default is 2 MiB)."""

SplitMode = Literal["train", "eval", "auto"]
"""Where ``add_examples`` puts rows: one split, or ``auto`` (the file's, else a stable one)."""
SPLIT_MODES: tuple[SplitMode, ...] = get_args(SplitMode)


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation."""

    role: str
    content: str


@dataclass(frozen=True)
class NewExample:
    """A validated conversation about to be stored, with what its file said about it."""

    messages: tuple[ChatMessage, ...]
    tags: tuple[str, ...] = ()
    split: ExampleSplit | None = None
    status: ExampleStatus | None = None


@dataclass(frozen=True)
class Example:
    """A stored example (its latest version)."""

    id: int
    project_id: int
    messages: tuple[ChatMessage, ...]
    content_hash: str
    source: ExampleSource
    status: ExampleStatus
    split: ExampleSplit
    tags: tuple[str, ...]
    version: int
    created_at: str
    updated_at: str
    deleted_at: str | None
    proposed: str | None = None
    """A model's proposed answer, waiting for a person to accept or correct it."""
    confidence: float | None = None
    """How sure that model was of its proposal, 0..1, from its own token probabilities."""
    proposed_by: str | None = None
    """Which model proposed it: ``run-<id>`` or ``base``."""

    @property
    def answered(self) -> bool:
        """Whether the conversation ends with an answer (unlabeled rows have none yet)."""
        return bool(self.messages) and self.messages[-1].role == "assistant"

    @property
    def prompt(self) -> str:
        """The first user turn."""
        return next((m.content for m in self.messages if m.role == "user"), "")

    @property
    def response(self) -> str:
        """The last assistant turn."""
        return next((m.content for m in reversed(self.messages) if m.role == "assistant"), "")


@dataclass(frozen=True)
class ExampleVersion:
    """An earlier version of an example, kept when it was edited or removed."""

    example_id: int
    version: int
    messages: tuple[ChatMessage, ...]
    status: ExampleStatus
    split: ExampleSplit
    tags: tuple[str, ...]
    recorded_at: str


@dataclass(frozen=True)
class AddResult:
    """What an insert of many examples did."""

    added: int
    duplicates: int
    train: int
    eval: int


def validate_messages(raw: object) -> tuple[ChatMessage, ...]:
    """Check a chat-format ``messages`` value and return it typed; raise InputError saying why."""
    if not isinstance(raw, list):
        raise InputError(f"'messages' must be a list, got {json_kind(raw)}")
    if not raw:
        raise InputError("'messages' is empty")
    messages: list[ChatMessage] = []
    for index, item in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise InputError(f"{where} must be an object, got {json_kind(item)}")
        role = item.get("role")
        if not isinstance(role, str):
            raise InputError(f"{where}: 'role' is missing or not a string")
        if role not in ROLES:
            raise InputError(f"{where}: unknown role {role!r} (expected system, user or assistant)")
        content = item.get("content")
        if not isinstance(content, str):
            raise InputError(f"{where}: 'content' is missing or not a string")
        messages.append(ChatMessage(role, validate_text(content, f"{where}.content")))
    if any(m.role == "system" for m in messages[1:]):
        raise InputError("a system message may only come first")
    if not any(m.role == "user" for m in messages):
        raise InputError("no user turn")
    if not any(m.role == "assistant" for m in messages):
        raise InputError("no assistant turn")
    if messages[-1].role != "assistant":
        raise InputError("the last turn must be the assistant's (it is what the model learns)")
    return tuple(messages)


def validate_text(text: str, field: str) -> str:
    """Return ``text`` if it is non-blank, not too long and free of NUL characters."""
    if not text.strip():
        raise InputError(f"{field} is empty")
    if len(text) > MAX_CONTENT_CHARS:
        raise InputError(
            f"{field} is too long ({len(text)} characters, at most {MAX_CONTENT_CHARS})"
        )
    if "\x00" in text:
        raise InputError(f"{field} contains a NUL character")
    return text


def validate_tags(raw: object) -> tuple[str, ...]:
    """Check a ``tags`` value: a list of short non-empty strings."""
    if not isinstance(raw, list) or not all(isinstance(tag, str) and tag.strip() for tag in raw):
        raise InputError("'tags' must be a list of non-empty strings")
    return tuple(dict.fromkeys(tag.strip() for tag in raw))


def prompt_response(prompt: str, response: str, system: str | None = None) -> NewExample:
    """A single-turn example from a prompt and a response."""
    messages = [ChatMessage("user", validate_text(prompt, "prompt"))]
    messages.append(ChatMessage("assistant", validate_text(response, "response")))
    if system is not None:
        messages.insert(0, ChatMessage("system", validate_text(system, "system")))
    return NewExample(messages=tuple(messages))


def unlabeled_example(prompt: str, system: str | None = None) -> NewExample:
    """An input with no answer yet, stored pending until a person labels it."""
    messages = [ChatMessage("user", validate_text(prompt, "input"))]
    if system is not None:
        messages.insert(0, ChatMessage("system", validate_text(system, "system")))
    return NewExample(messages=tuple(messages))


def check_approvable(example_id: int | None, messages: Sequence[ChatMessage]) -> None:
    """Refuse to approve a row without an answer: only answered rows can train or evaluate."""
    if not messages or messages[-1].role != "assistant":
        which = "this example" if example_id is None else f"example {example_id}"
        raise InputError(f"{which} has no answer yet: label it before approving it")


def messages_to_json(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """The chat format TRL and OpenAI take."""
    return [{"role": m.role, "content": m.content} for m in messages]


def content_hash(messages: Sequence[ChatMessage]) -> str:
    """A stable hash of a conversation; equal conversations are duplicates."""
    canonical = json.dumps([[m.role, m.content] for m in messages], ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def prompt_key(messages: Sequence[ChatMessage]) -> str:
    """A short hash of a conversation's first user turn, case and spacing ignored: rows with
    equal keys share a prompt (``store.example_pages`` finds them through an index)."""
    prompt = next((m.content for m in messages if m.role == "user"), "")
    normalised = " ".join(prompt.casefold().split())
    return hashlib.blake2b(normalised.encode("utf-8"), digest_size=12).hexdigest()


def auto_split(digest: str) -> ExampleSplit:
    """The split ``--split auto`` gives a row: a stable ~15% of hashes go to eval."""
    return "eval" if int(digest[:8], 16) % 100 < EVAL_PERCENT else "train"


def add_examples(
    db: sqlite_utils.Database,
    project_id: int,
    new_examples: Iterable[NewExample],
    *,
    source: ExampleSource,
    split_mode: SplitMode = "auto",
    status: ExampleStatus = "approved",
) -> AddResult:
    """Insert examples in one transaction, skipping any already present in the project.

    With ``split_mode="auto"`` a row keeps the split its file gave it, else gets a stable one.
    A status given by the file (as in an export) wins over ``status``.
    """
    check_choice("source", source, EXAMPLE_SOURCES)
    check_choice("status", status, EXAMPLE_STATUSES)
    check_choice("split", split_mode, SPLIT_MODES)
    # A file's rows touch pages all over the unique and prompt indexes; with SQLite's default
    # 2 MiB of cache a large import spends most of its time re-reading them.
    (cache_size,) = db.execute("PRAGMA cache_size").fetchone()
    db.execute(f"PRAGMA cache_size = {-IMPORT_CACHE_KIB}")
    try:
        return _insert_examples(db, project_id, new_examples, source, split_mode, status)
    finally:
        db.execute(f"PRAGMA cache_size = {int(cache_size)}")


def _insert_examples(
    db: sqlite_utils.Database,
    project_id: int,
    new_examples: Iterable[NewExample],
    source: ExampleSource,
    split_mode: SplitMode,
    status: ExampleStatus,
) -> AddResult:
    timestamp = now_iso()
    given = 0
    batch: list[list[object]] = []
    insert = (
        "INSERT OR IGNORE INTO examples (project_id, messages, content_hash, prompt_key, source,"
        " status, split, tags, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    with write_transaction(db):
        # New rows get ids past every id there is, so the ids past this one are the rows added
        # (a duplicate is ignored), counted once at the end: the rows go in by batches, in
        # their order, and only a batch is held.
        (last_id,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM examples").fetchone()
        for example in new_examples:
            digest = content_hash(example.messages)
            split: str = split_mode
            if split_mode == "auto":
                split = example.split or auto_split(digest)
            row_status = example.status or status
            check_choice("split", split, EXAMPLE_SPLITS)
            check_choice("status", row_status, EXAMPLE_STATUSES)
            if row_status == "approved":
                check_approvable(None, example.messages)
            batch.append(
                [
                    project_id,
                    json.dumps(messages_to_json(example.messages), ensure_ascii=False),
                    digest,
                    prompt_key(example.messages),
                    source,
                    row_status,
                    split,
                    json.dumps(list(example.tags), ensure_ascii=False),
                    timestamp,
                    timestamp,
                ]
            )
            given += 1
            if len(batch) >= INSERT_BATCH:
                db.conn.executemany(insert, batch)
                batch.clear()
        db.conn.executemany(insert, batch)
        added = dict.fromkeys(EXAMPLE_SPLITS, 0)
        for added_split, count in db.execute(
            "SELECT split, COUNT(*) FROM examples WHERE id > ? GROUP BY split", [last_id]
        ):
            added[added_split] = count
    total = sum(added.values())
    return AddResult(
        added=total, duplicates=given - total, train=added["train"], eval=added["eval"]
    )


def list_examples(
    db: sqlite_utils.Database, project_id: int, *, include_removed: bool = False
) -> list[Example]:
    """The project's examples in insertion order; removed ones only when asked."""
    return list(iter_examples(db, project_id, include_removed=include_removed))


def iter_examples(
    db: sqlite_utils.Database,
    project_id: int,
    *,
    include_removed: bool = False,
    status: ExampleStatus | None = None,
    split: ExampleSplit | None = None,
) -> Iterator[Example]:
    """The project's examples in insertion order, read as they are used (a million never sit in
    memory at once), optionally only those of one status and/or split.

    One statement reads them all: one consistent view of the table (other connections'
    writes wait for none of it in WAL mode), held until the iteration ends or is dropped.
    """
    where, params = _live_rows(project_id, status, split, include_removed=include_removed)
    for row in db.query(f"SELECT * FROM examples WHERE {where} ORDER BY id", params):
        yield example_from_row(row)


def _live_rows(
    project_id: int,
    status: ExampleStatus | None,
    split: ExampleSplit | None,
    *,
    include_removed: bool = False,
) -> tuple[str, list[object]]:
    """The SQL condition (and its parameters) for the project's live rows, or all its rows,
    of a status and/or split when given."""
    where = ["project_id = ?"]
    params: list[object] = [project_id]
    if not include_removed:
        where.append("deleted_at IS NULL")
    for column, value, choices in (
        ("status", status, EXAMPLE_STATUSES),
        ("split", split, EXAMPLE_SPLITS),
    ):
        if value is not None:
            check_choice(column, value, choices)
            where.append(f"{column} = ?")
            params.append(value)
    return " AND ".join(where), params


def example_ids(
    db: sqlite_utils.Database,
    project_id: int,
    *,
    status: ExampleStatus | None = None,
    split: ExampleSplit | None = None,
) -> Iterator[int]:
    """The ids of the project's live examples, optionally of one status and/or split, without
    reading their conversations."""
    where, params = _live_rows(project_id, status, split)
    for (example_id,) in db.execute(f"SELECT id FROM examples WHERE {where} ORDER BY id", params):
        yield int(example_id)


def count_examples(
    db: sqlite_utils.Database,
    project_id: int,
    *,
    status: ExampleStatus | None = None,
    split: ExampleSplit | None = None,
) -> int:
    """How many live examples the project has, optionally of one status and/or split (an
    index count: no row is read)."""
    where, params = _live_rows(project_id, status, split)
    (count,) = db.execute(f"SELECT COUNT(*) FROM examples WHERE {where}", params).fetchone()
    return int(count)


@dataclass(frozen=True)
class ExampleRows:
    """The live examples of a project with one status and split, counted (``len``) and read
    (iterating) from the store each time they are asked for, never held in memory."""

    db: sqlite_utils.Database
    project_id: int
    status: ExampleStatus
    split: ExampleSplit

    def __len__(self) -> int:
        return count_examples(self.db, self.project_id, status=self.status, split=self.split)

    def __iter__(self) -> Iterator[Example]:
        return iter_examples(self.db, self.project_id, status=self.status, split=self.split)


def get_example(db: sqlite_utils.Database, example_id: int) -> Example:
    """The example with id ``example_id`` (removed or not)."""
    rows = list(db.query("SELECT * FROM examples WHERE id = ?", [example_id]))
    if not rows:
        raise NotFoundError(f"no example with id {example_id}")
    return example_from_row(rows[0])


def update_example(
    db: sqlite_utils.Database,
    example_id: int,
    *,
    messages: tuple[ChatMessage, ...] | None = None,
    status: ExampleStatus | None = None,
    split: ExampleSplit | None = None,
    tags: tuple[str, ...] | None = None,
) -> Example:
    """Change an example, keeping its previous version in the history."""
    if status is not None:
        check_choice("status", status, EXAMPLE_STATUSES)
    if split is not None:
        check_choice("split", split, EXAMPLE_SPLITS)
    if messages is not None:
        messages = validate_messages(messages_to_json(messages))
    with write_transaction(db):
        current = live_example(db, example_id)
        record_version(db, current)
        new_messages = messages if messages is not None else current.messages
        if (status or current.status) == "approved":
            check_approvable(example_id, new_messages)
        db.execute(
            "UPDATE examples SET messages = ?, content_hash = ?, status = ?, split = ?, tags = ?,"
            " version = version + 1, updated_at = ? WHERE id = ?",
            [
                json.dumps(messages_to_json(new_messages), ensure_ascii=False),
                content_hash(new_messages),
                status or current.status,
                split or current.split,
                json.dumps(list(tags if tags is not None else current.tags), ensure_ascii=False),
                now_iso(),
                example_id,
            ],
        )
    return get_example(db, example_id)


UNANSWERED = "json_extract(messages, '$[#-1].role') != 'assistant'"
"""SQL condition: the row's conversation has no answer yet."""
UNANSWERED_INDEX = "INDEXED BY examples_unanswered"
"""Names the partial index of the rows without an answer (m005), which a query needs next to
``deleted_at IS NULL AND UNANSWERED``: without statistics SQLite would rather walk every row
of the project through ``examples_project``."""
QUEUE_ORDER = "confidence IS NULL, confidence, id"
"""Least confident proposal first, rows without one last in the order they came: the order
of ``examples_unanswered``."""


def set_proposal(
    db: sqlite_utils.Database,
    example_id: int,
    answer: str,
    confidence: float,
    proposed_by: str,
) -> None:
    """Store a model's proposed answer for a row, at once (a killed labeller loses none).

    A proposal is not the row's answer, so it is not versioned; accepting it is.
    """
    validate_text(answer, "proposed answer")
    if not 0.0 <= confidence <= 1.0:
        raise InputError(f"confidence must be within 0..1, not {confidence}")
    cursor = db.execute(
        "UPDATE examples SET proposed = ?, confidence = ?, proposed_by = ?, updated_at = ?"
        " WHERE id = ? AND deleted_at IS NULL",
        [answer, confidence, proposed_by, now_iso(), example_id],
    )
    if not cursor.rowcount:
        live_example(db, example_id)


def give_answer(db: sqlite_utils.Database, example_id: int, answer: str) -> Example:
    """Make ``answer`` (an accepted proposal or a person's correction) the row's answer: the
    row is approved with source ``labelled``, its earlier version kept."""
    validate_text(answer, "answer")
    with write_transaction(db):
        current = live_example(db, example_id)
        turns = current.messages[:-1] if current.answered else current.messages
        messages = (*turns, ChatMessage("assistant", answer))
        digest = content_hash(messages)
        duplicate = live_duplicate(db, current.project_id, digest, example_id)
        if duplicate is not None:
            raise InputError(f"example {duplicate} already has exactly this conversation")
        record_version(db, current)
        db.execute(
            "UPDATE examples SET messages = ?, content_hash = ?, status = 'approved',"
            " source = 'labelled', version = version + 1, updated_at = ? WHERE id = ?",
            [
                json.dumps(messages_to_json(messages), ensure_ascii=False),
                digest,
                now_iso(),
                example_id,
            ],
        )
    return get_example(db, example_id)


def unlabeled_examples(
    db: sqlite_utils.Database, project_id: int, *, unproposed_only: bool = False
) -> list[Example]:
    """The project's live rows that have no answer yet, least confident proposal first (rows
    with no proposal last, in the order they came)."""
    where = f"project_id = ? AND deleted_at IS NULL AND {UNANSWERED}"
    if unproposed_only:
        where += " AND proposed IS NULL"
    return [
        example_from_row(row)
        for row in db.query(
            f"SELECT * FROM examples {UNANSWERED_INDEX} WHERE {where} ORDER BY {QUEUE_ORDER}",
            [project_id],
        )
    ]


def remove_example(db: sqlite_utils.Database, example_id: int) -> Example:
    """Remove an example from the project; the row and its history stay for undo."""
    with write_transaction(db):
        current = live_example(db, example_id)
        record_version(db, current)
        timestamp = now_iso()
        db.execute(
            "UPDATE examples SET deleted_at = ?, updated_at = ?, version = version + 1"
            " WHERE id = ?",
            [timestamp, timestamp, example_id],
        )
    return get_example(db, example_id)


def example_history(db: sqlite_utils.Database, example_id: int) -> list[ExampleVersion]:
    """Earlier versions of an example, oldest first."""
    get_example(db, example_id)
    return [
        ExampleVersion(
            example_id=row["example_id"],
            version=row["version"],
            messages=messages_from_json(row["messages"]),
            status=row["status"],
            split=row["split"],
            tags=tuple(json.loads(row["tags"])),
            recorded_at=row["recorded_at"],
        )
        for row in db.query(
            "SELECT * FROM example_versions WHERE example_id = ? ORDER BY version", [example_id]
        )
    ]


def live_example(db: sqlite_utils.Database, example_id: int) -> Example:
    """The example with id ``example_id``; NotFoundError when it was removed."""
    example = get_example(db, example_id)
    if example.deleted_at is not None:
        raise NotFoundError(f"example {example_id} was removed")
    return example


def record_version(db: sqlite_utils.Database, example: Example) -> None:
    """Keep ``example`` as it is now in its history, before it changes."""
    db.execute(
        "INSERT INTO example_versions (example_id, version, messages, status, split, tags,"
        " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            example.id,
            example.version,
            json.dumps(messages_to_json(example.messages), ensure_ascii=False),
            example.status,
            example.split,
            json.dumps(list(example.tags), ensure_ascii=False),
            now_iso(),
        ],
    )


def live_duplicate(
    db: sqlite_utils.Database, project_id: int, digest: str, except_id: int
) -> int | None:
    """The id of another live example of the project with this content hash, if any."""
    rows = list(
        db.query(
            "SELECT id FROM examples WHERE project_id = ? AND content_hash = ?"
            " AND deleted_at IS NULL AND id != ? LIMIT 1",
            [project_id, digest, except_id],
        )
    )
    return int(rows[0]["id"]) if rows else None


def example_from_row(row: dict[str, Any]) -> Example:
    """An example from its row of ``examples`` (every column, as ``SELECT *`` reads it)."""
    return Example(
        id=row["id"],
        project_id=row["project_id"],
        messages=messages_from_json(row["messages"]),
        content_hash=row["content_hash"],
        source=row["source"],
        status=row["status"],
        split=row["split"],
        tags=tuple(json.loads(row["tags"])),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deleted_at=row["deleted_at"],
        proposed=row["proposed"],
        confidence=row["confidence"],
        proposed_by=row["proposed_by"],
    )


def messages_from_json(text: str) -> tuple[ChatMessage, ...]:
    """A stored ``messages`` column as typed turns."""
    return tuple(ChatMessage(m["role"], m["content"]) for m in json.loads(text))


def json_kind(value: object) -> str:
    """How a decoded JSON value is named in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
