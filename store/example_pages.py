"""A project's examples a page at a time, for a screen that shows a million of them.

The counts, the filter, the order and the window of rows shown are each a query over the
indexes of migration m005; nothing here lists every row. The one check that needs every row,
which rows share a prompt, is done in SQL too, through each row's ``prompt_key``.

The filter's words are matched in SQL against the stored JSON. A word is looked for in the
raw text first (one ``instr`` per row); where that could also match the JSON around the text
(``role``, ``content``, an escape such as ``\\n``), the row's decoded turns are checked too.
Letters are compared case-insensitively: ASCII words through SQLite's ``lower`` (ASCII letters
only), other words through Python's ``casefold``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import sqlite_utils

from store.database import write_transaction
from store.examples import (
    QUEUE_ORDER,
    UNANSWERED,
    UNANSWERED_INDEX,
    Example,
    count_examples,
    example_from_row,
    messages_from_json,
    prompt_key,
)
from store.vocabulary import EXAMPLE_SPLITS, EXAMPLE_STATUSES, ExampleSplit, ExampleStatus

ExampleOrder = Literal["oldest", "newest", "changed", "longest"]
"""The order of the rows shown: as they came, newest first, last changed first, longest first."""
EXAMPLE_ORDERS: tuple[ExampleOrder, ...] = get_args(ExampleOrder)

_ORDER_BY: dict[ExampleOrder, str] = {
    "oldest": "id",
    "newest": "id DESC",
    "changed": "updated_at DESC, id DESC",
    "longest": "length(messages) DESC, id DESC",
}
"""Each order as SQL, the one of an index (``examples_project``, ``examples_changed``,
``examples_length``), so a window never sorts the project."""

DUPLICATE_FLAG = "dup"
"""The flag of a row whose prompt another live row of the project shares."""
LONG_FLAG = "long"
"""The flag of a row too long to train on, or far longer than most."""
BOTH_FLAG = "both"
"""The flag of a row that is both."""

KEY_BATCH = 2000
"""Rows whose prompt keys are computed and stored per transaction."""

_CASEFOLD = "tunesmith_casefold"
"""The SQL name of Python's ``str.casefold``, for words SQLite's ``lower`` cannot fold."""

_STORED_JSON = {
    "messages": ('[{"role": "', '", "content": "', '"}, {"role": "', '"}]'),
    "tags": ("[]", '["', '", "', '"]'),
}
"""What ``json.dumps`` writes around the text of each JSON column: a word found inside any of
it may be a match of the JSON, not of the text."""
_ROLES = ("system", "user", "assistant")
_AFTER_BACKSLASH = frozenset('"\\bfnrtu0123456789abcdef')
"""What may follow a backslash in a JSON escape (``\\n``, ``\\u001b``): a word that starts
with one of these may match the inside of an escape."""

_SHARED_PROMPT_KEYS = (
    "SELECT prompt_key FROM examples WHERE project_id = ? AND deleted_at IS NULL"
    " AND prompt_key IS NOT NULL GROUP BY prompt_key HAVING COUNT(*) > 1"
)
"""SQL: the prompt keys more than one live row of the project has (``examples_prompt``)."""


@dataclass(frozen=True)
class ExampleCounts:
    """How many live examples a project has, by status and split, and how many have no answer."""

    total: int
    by_status: dict[ExampleStatus, int]
    by_split: dict[ExampleSplit, int]
    unanswered: int


@dataclass(frozen=True)
class ExampleView:
    """Which of a project's live examples are shown, and in what order."""

    words: tuple[str, ...] = ()
    """Casefolded words, each of which must occur in the row's text, tags, status, split or
    source, or in the name of one of its flags; none shows every row."""
    order: ExampleOrder = "oldest"
    long_chars: int | None = None
    """Rows longer than this many characters (of stored JSON) carry the ``long`` flag for the
    filter: the caller's estimate of a token limit; None flags none."""


@dataclass(frozen=True)
class ExampleWindow:
    """Consecutive rows of a view: ``rows`` start at position ``offset`` of ``matching``."""

    offset: int
    rows: tuple[Example, ...]
    matching: int
    """How many rows the view holds."""


@dataclass(frozen=True)
class UnansweredPage:
    """The first rows without an answer, least confident proposal first, and how many there are."""

    rows: tuple[Example, ...]
    total: int


def filter_words(text: str) -> tuple[str, ...]:
    """The words of a filter as ``ExampleView.words`` takes them."""
    return tuple(text.casefold().split())


def example_counts(db: sqlite_utils.Database, project_id: int) -> ExampleCounts:
    """The project's live examples counted by status and split (``examples_counts``), and
    those without an answer (``examples_unanswered``)."""
    by_status: dict[ExampleStatus, int] = dict.fromkeys(EXAMPLE_STATUSES, 0)
    by_split: dict[ExampleSplit, int] = dict.fromkeys(EXAMPLE_SPLITS, 0)
    total = 0
    for status, split, count in db.execute(
        "SELECT status, split, COUNT(*) FROM examples WHERE project_id = ?"
        " AND deleted_at IS NULL GROUP BY status, split",
        [project_id],
    ):
        by_status[status] += count
        by_split[split] += count
        total += count
    (unanswered,) = db.execute(
        f"SELECT COUNT(*) FROM examples {UNANSWERED_INDEX} WHERE project_id = ?"
        f" AND deleted_at IS NULL AND {UNANSWERED}",
        [project_id],
    ).fetchone()
    return ExampleCounts(total, by_status, by_split, unanswered)


def example_window(
    db: sqlite_utils.Database,
    project_id: int,
    view: ExampleView,
    offset: int,
    limit: int,
    *,
    matching: int | None = None,
) -> ExampleWindow:
    """Up to ``limit`` rows of ``view`` from position ``offset``, moved back so the window is
    full where the view has the rows, and how many rows the view holds (``matching``, when
    the caller knows: an unfiltered view holds every live row)."""
    where, params = _view_condition(db, project_id, view)

    def ids_from(start: int) -> list[int]:
        # The ids first: the order's index walks past the rows before the window without
        # reading them, and only the rows shown are read whole.
        return [
            row_id
            for (row_id,) in db.execute(
                f"SELECT id FROM examples WHERE {where} ORDER BY {_ORDER_BY[view.order]}"
                " LIMIT ? OFFSET ?",
                [*params, limit, max(0, start)],
            )
        ]

    offset = max(0, offset)
    ids = ids_from(offset)
    if offset == 0 and len(ids) < limit:
        # The whole view fits: no second pass over the rows to count them.
        matching = len(ids)
    else:
        if matching is None:
            (matching,) = db.execute(
                f"SELECT COUNT(*) FROM examples WHERE {where}", params
            ).fetchone()
        if len(ids) < limit and offset > 0:
            offset = max(0, matching - limit)
            ids = ids_from(offset)
    return ExampleWindow(offset, tuple(examples_by_id(db, ids)), matching)


def examples_by_id(db: sqlite_utils.Database, ids: Sequence[int]) -> list[Example]:
    """The examples with these ids (removed ones too), in the order of ``ids``; missing ids are
    left out."""
    if not ids:
        return []
    marks = ", ".join("?" * len(ids))
    found = {
        row["id"]: example_from_row(row)
        for row in db.query(f"SELECT * FROM examples WHERE id IN ({marks})", list(ids))
    }
    return [found[row_id] for row_id in ids if row_id in found]


def unanswered_page(db: sqlite_utils.Database, project_id: int, limit: int) -> UnansweredPage:
    """The first ``limit`` live rows without an answer, least confident proposal first (rows
    with none last, in the order they came), and how many there are."""
    condition = f"project_id = ? AND deleted_at IS NULL AND {UNANSWERED}"
    rows = db.query(
        f"SELECT * FROM examples {UNANSWERED_INDEX} WHERE {condition}"
        f" ORDER BY {QUEUE_ORDER} LIMIT ?",
        [project_id, limit],
    )
    page = tuple(example_from_row(row) for row in rows)
    (total,) = db.execute(
        f"SELECT COUNT(*) FROM examples {UNANSWERED_INDEX} WHERE {condition}", [project_id]
    ).fetchone()
    return UnansweredPage(page, total)


def sample_examples(db: sqlite_utils.Database, project_id: int, limit: int) -> list[Example]:
    """About ``limit`` live rows spread evenly over the project by id (every row when it has
    no more), for checks that a sample can answer."""
    step = max(1, count_examples(db, project_id) // max(1, limit))
    return [
        example_from_row(row)
        for row in db.query(
            "SELECT * FROM examples WHERE project_id = ? AND deleted_at IS NULL AND id % ? = 0"
            " ORDER BY id LIMIT ?",
            [project_id, step, limit],
        )
    ]


def approved_answers(
    db: sqlite_utils.Database, project_id: int, limit: int
) -> list[tuple[str, int]]:
    """The distinct answers of the project's approved rows with how many rows give each, most
    given first, at most ``limit`` of them: enough to tell a few labels from free text."""
    rows = db.execute(
        "SELECT json_extract(messages, '$[#-1].content') AS answer, COUNT(*) AS given"
        " FROM examples WHERE project_id = ? AND deleted_at IS NULL AND status = 'approved'"
        f" AND NOT ({UNANSWERED}) GROUP BY answer ORDER BY given DESC, answer LIMIT ?",
        [project_id, limit],
    )
    return [(answer, given) for answer, given in rows if isinstance(answer, str)]


def fill_prompt_keys(db: sqlite_utils.Database, project_id: int) -> Iterator[tuple[int, int]]:
    """Compute and store the prompt keys the project's live rows lack (stored before m005, or
    changed since), a batch per transaction; yield (done, missing) after each batch.

    The caller may stop between batches: what was stored stays.
    """
    missing_rows = "project_id = ? AND deleted_at IS NULL AND prompt_key IS NULL"
    (missing,) = db.execute(
        f"SELECT COUNT(*) FROM examples WHERE {missing_rows}", [project_id]
    ).fetchone()
    done = 0
    while done < missing:
        rows = db.execute(
            f"SELECT id, messages FROM examples WHERE {missing_rows} LIMIT ?",
            [project_id, KEY_BATCH],
        ).fetchall()
        if not rows:
            return
        _store_prompt_keys(db, rows)
        done += len(rows)
        yield min(done, missing), missing


def shared_prompts(
    db: sqlite_utils.Database, ids: Sequence[int], limit: int = 5
) -> dict[int, tuple[int, ...]]:
    """For each of the rows ``ids`` that shares its prompt with other live rows of its project,
    the first ``limit`` of those; rows among them without a key get theirs first."""
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    keyless = db.execute(
        f"SELECT id, messages FROM examples WHERE id IN ({marks}) AND prompt_key IS NULL",
        list(ids),
    ).fetchall()
    if keyless:
        _store_prompt_keys(db, keyless)
    shared: dict[int, tuple[int, ...]] = {}
    # The rows by their ids alone: a condition on the project would have SQLite walk the
    # project's rows for them.
    for row_id, others in db.execute(
        "SELECT examples.id, (SELECT group_concat(other_id) FROM (SELECT other.id AS other_id"
        " FROM examples AS other WHERE other.project_id = examples.project_id"
        " AND other.deleted_at IS NULL AND other.prompt_key = examples.prompt_key"
        " AND other.id != examples.id ORDER BY other.id LIMIT ?))"
        f" FROM examples WHERE examples.id IN ({marks})",
        [limit, *ids],
    ):
        if others:
            shared[row_id] = tuple(int(other) for other in others.split(","))
    return shared


def duplicate_count(db: sqlite_utils.Database, project_id: int) -> int:
    """How many live rows share their prompt with another (rows without a key not counted:
    ``fill_prompt_keys`` first)."""
    (count,) = db.execute(
        "SELECT COUNT(*) FROM examples WHERE project_id = ? AND deleted_at IS NULL"
        f" AND prompt_key IN ({_SHARED_PROMPT_KEYS})",
        [project_id, project_id],
    ).fetchone()
    return int(count)


def _store_prompt_keys(db: sqlite_utils.Database, rows: Sequence[tuple[int, str]]) -> None:
    keys = [(prompt_key(messages_from_json(messages)), row_id) for row_id, messages in rows]
    with write_transaction(db):
        db.conn.executemany("UPDATE examples SET prompt_key = ? WHERE id = ?", keys)


def _view_condition(
    db: sqlite_utils.Database, project_id: int, view: ExampleView
) -> tuple[str, list[object]]:
    """The SQL condition that selects the rows of ``view``, with its parameters."""
    clauses = ["project_id = ?", "deleted_at IS NULL"]
    params: list[object] = [project_id]
    if any(not word.isascii() for word in view.words):
        db.conn.create_function(_CASEFOLD, 1, _casefold, deterministic=True)
    for word in view.words:
        clause, word_params = _word_condition(project_id, word, view.long_chars)
        clauses.append(clause)
        params.extend(word_params)
    return " AND ".join(clauses), params


def _word_condition(project_id: int, word: str, long_chars: int | None) -> tuple[str, list[object]]:
    """SQL condition: ``word`` occurs in the row's status, split, source, tags, text or flag."""
    parts = ["instr(status, ?)", "instr(split, ?)", "instr(source, ?)"]
    params: list[object] = [word, word, word]
    for column, item_text in (
        ("tags", "json_each.value"),
        ("messages", "json_each.value ->> '$.content'"),
    ):
        part, part_params = _json_text_condition(column, item_text, word)
        parts.append(part)
        params.extend(part_params)
    # The keys shared by several rows are found once per query, not once per row.
    shared = f"prompt_key IN ({_SHARED_PROMPT_KEYS})"
    if word in DUPLICATE_FLAG:
        parts.append(shared)
        params.append(project_id)
    if long_chars is not None and word in LONG_FLAG:
        parts.append("length(messages) > ?")
        params.append(long_chars)
    if long_chars is not None and word in BOTH_FLAG:
        parts.append(f"({shared} AND length(messages) > ?)")
        params.extend([project_id, long_chars])
    return f"({' OR '.join(parts)})", params


def _json_text_condition(column: str, item_text: str, word: str) -> tuple[str, list[object]]:
    """SQL condition: ``word`` occurs in a text of the JSON ``column``, whose items' texts are
    ``item_text`` (over ``json_each``)."""
    fold = "lower" if word.isascii() else _CASEFOLD
    folded = f"{fold}({column})"
    # Text that holds the word holds it escaped as JSON: the raw column is the quick test.
    escaped = json.dumps(word, ensure_ascii=False)[1:-1]
    raw = f"instr({folded}, ?)"
    decoded = f"EXISTS (SELECT 1 FROM json_each({column}) WHERE instr({fold}({item_text}), ?))"
    if _in_json_around(column, word):
        return f"({raw} AND {decoded})", [escaped, word]
    if word[0] not in _AFTER_BACKSLASH:
        return raw, [escaped]
    # Found in the raw text but never right after a backslash, in a row without \u escapes,
    # the word cannot have started inside an escape; only other rows are decoded.
    unescaped = f"(instr({folded}, '\\' || ?) = 0 AND instr({column}, '\\u') = 0)"
    return f"({raw} AND ({unescaped} OR {decoded}))", [escaped, word, word]


def _in_json_around(column: str, word: str) -> bool:
    """Whether ``word`` could be found in the JSON around the texts of ``column``: it holds
    what JSON escapes, or it is part of what ``json.dumps`` writes around them."""
    if any(char in '"\\' or ord(char) < 0x20 for char in word):
        return True
    around = _STORED_JSON[column] + (_ROLES if column == "messages" else ())
    return any(word in piece for piece in around)


def _casefold(text: str | None) -> str | None:
    return text.casefold() if text is not None else None
