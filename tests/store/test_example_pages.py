"""A project's examples a page at a time: the counts, the filter (checked word for word against
the rule it answers in SQL), the orders and windows, the rows without an answer, the rows that
share a prompt, and the indexes each query uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlite_utils

from store.database import open_database
from store.example_edits import ExampleUpdate, restore_examples, update_examples
from store.example_pages import (
    BOTH_FLAG,
    DUPLICATE_FLAG,
    LONG_FLAG,
    ExampleView,
    approved_answers,
    duplicate_count,
    example_counts,
    example_window,
    examples_by_id,
    fill_prompt_keys,
    filter_words,
    sample_examples,
    shared_prompts,
    unanswered_page,
)
from store.examples import (
    Example,
    NewExample,
    add_examples,
    give_answer,
    list_examples,
    messages_to_json,
    prompt_response,
    set_proposal,
    unlabeled_example,
)
from store.projects import create_project

LONG_CHARS = 160
"""Rows of stored JSON longer than this carry the ``long`` flag in these tests."""

TRICKY = (
    ("Line one\nnext line", "ok", ()),
    ('She said "hi" twice', "quoted", ()),
    ("A back\\slash here", "ok", ()),
    ("\x1b[31mred\x1b[0m alert", "colour", ()),
    ("École fermée", "fr", ("Été",)),
    ("The user is angry", "the assistant answers", ("battery", "fast charge")),
    ("What role does content play?", "none", ()),
    ("the user is ANGRY", "duplicate prompt, other answer", ()),
    ("a b c d e f " * 12, "long row", ()),
    ("Refund please", "billing", ("money",)),
)
"""(prompt, answer, tags) of rows whose text the raw JSON would match wrongly: escapes,
quotes, the JSON's own words, case, letters outside ASCII, a shared prompt, a long row."""

WORDS = (
    "next",
    "nnext",
    "ne",
    '"hi"',
    "said",
    "back\\slash",
    "\\slash",
    "u001b",
    "1b",
    "[31mred",
    "école",
    "été",
    "user",
    "assistant",
    "role",
    "content",
    "on",
    ":",
    "{",
    "angry",
    "charge",
    "fast",
    "approved",
    "pend",
    "eval",
    "typed",
    "import",
    "dup",
    "du",
    "long",
    "both",
    "o",
    "refund",
    "money",
    "b",
    "nothing-like-it",
)
"""Words to filter by: each alone, then in pairs."""


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    """The project ``p`` (id 1) with the TRICKY rows, the first half imported and approved,
    the rest typed and pending, every third in eval; and a project ``other`` sharing none."""
    database = open_database(tmp_path / "t.db")
    project = create_project(database, "p")
    rows = [
        NewExample(messages=prompt_response(prompt, answer).messages, tags=tags)
        for prompt, answer, tags in TRICKY
    ]
    half = len(rows) // 2
    add_examples(database, project.id, rows[:half], source="imported", split_mode="train")
    add_examples(
        database, project.id, rows[half:], source="typed", split_mode="train", status="pending"
    )
    update_examples(database, [ExampleUpdate(i, split="eval") for i in range(1, 11, 3)])
    other = create_project(database, "other")
    add_examples(database, other.id, [prompt_response("The user is angry", "x")], source="typed")
    return database


def reference_flag(example: Example, shared: set[int]) -> str:
    """The flag the table shows, from the rows known to share a prompt and the long bound."""
    long = len(_stored_json(example)) > LONG_CHARS
    if example.id in shared and long:
        return BOTH_FLAG
    if example.id in shared:
        return DUPLICATE_FLAG
    return LONG_FLAG if long else ""


def _stored_json(example: Example) -> str:
    return json.dumps(messages_to_json(example.messages), ensure_ascii=False)


def reference_matches(example: Example, flag: str, words: tuple[str, ...]) -> bool:
    """The filter's rule in Python: every word occurs in the row's status, split, source, flag,
    tags or text, case aside."""
    haystack = " ".join(
        (
            example.status,
            example.split,
            example.source,
            flag,
            " ".join(example.tags),
            *(message.content for message in example.messages),
        )
    ).casefold()
    return all(word in haystack for word in words)


def test_the_filter_finds_what_the_rule_says_and_nothing_the_json_holds(
    db: sqlite_utils.Database,
) -> None:
    examples = list_examples(db, 1)
    shared = {
        example.id for example in examples if example.prompt.casefold().startswith("the user")
    }
    assert len(shared) == 2
    flags = {example.id: reference_flag(example, shared) for example in examples}
    assert set(flags.values()) == {"", DUPLICATE_FLAG, LONG_FLAG}
    word_sets = [(word,) for word in WORDS] + [
        (first, second) for first in WORDS[::5] for second in WORDS[2::7]
    ]
    for words in word_sets:
        expected = [e.id for e in examples if reference_matches(e, flags[e.id], words)]
        window = example_window(db, 1, ExampleView(words, long_chars=LONG_CHARS), 0, 100)
        assert [e.id for e in window.rows] == expected, words
        assert window.matching == len(expected)
    # Words as typed: case and spacing aside.
    assert filter_words("  École\tUSER ") == ("école", "user")


def test_counts_windows_and_orders(db: sqlite_utils.Database) -> None:
    counts = example_counts(db, 1)
    assert counts.total == len(TRICKY) and counts.unanswered == 0
    assert counts.by_status == {"pending": 5, "approved": 5, "rejected": 0}
    assert counts.by_split == {"train": 6, "eval": 4}
    oldest = example_window(db, 1, ExampleView(), 0, 4)
    assert (oldest.offset, [e.id for e in oldest.rows], oldest.matching) == (0, [1, 2, 3, 4], 10)
    # A window past the end moves back to be full.
    last = example_window(db, 1, ExampleView(), 8, 4)
    assert (last.offset, [e.id for e in last.rows]) == (6, [7, 8, 9, 10])
    assert example_window(db, 1, ExampleView(order="newest"), 0, 3).rows[0].id == 10
    longest = example_window(db, 1, ExampleView(order="longest"), 0, 1).rows
    assert longest[0].prompt.startswith("a b c d")
    # The last change leads; a removed row is no row of any view.
    give_answer(db, 2, "changed")
    assert example_window(db, 1, ExampleView(order="changed"), 0, 1).rows[0].id == 2
    update_examples(db, [ExampleUpdate(3, status="rejected")])
    db.execute("UPDATE examples SET deleted_at = 'now' WHERE id = 4")
    assert example_counts(db, 1).total == 9
    assert 4 not in [e.id for e in example_window(db, 1, ExampleView(), 0, 20).rows]
    assert [e.id for e in examples_by_id(db, [9, 4, 99, 1])] == [9, 4, 1]


def test_the_rows_without_an_answer_least_confident_first(db: sqlite_utils.Database) -> None:
    inputs = [unlabeled_example(f"input {n}") for n in range(4)]
    add_examples(db, 1, inputs, source="imported", status="pending")
    set_proposal(db, 12, "x", 0.9, "base")
    set_proposal(db, 13, "y", 0.2, "base")
    page = unanswered_page(db, 1, 3)
    # Ids 12-15 (11 is the other project's row).
    assert ([e.id for e in page.rows], page.total) == ([13, 12, 14], 4)
    assert example_counts(db, 1).unanswered == 4


def test_shared_prompts_follow_every_change(db: sqlite_utils.Database) -> None:
    assert shared_prompts(db, [6, 8, 1]) == {6: (8,), 8: (6,)}
    assert duplicate_count(db, 1) == 2
    # An edit by any writer clears the row's key; the store finds it again when asked.
    before = list_examples(db, 1)[0]
    db.execute(
        "UPDATE examples SET messages = ? WHERE id = 1", [_stored_json(list_examples(db, 1)[5])]
    )
    assert db.execute("SELECT prompt_key FROM examples WHERE id = 1").fetchone() == (None,)
    assert duplicate_count(db, 1) == 2
    assert list(fill_prompt_keys(db, 1)) == [(1, 1)]
    assert duplicate_count(db, 1) == 3
    assert shared_prompts(db, [6]) == {6: (1, 8)}
    # Undone through the edits module: keyed again on the next look.
    restore_examples(db, [before])
    assert shared_prompts(db, [1, 6]) == {6: (8,)}
    assert list(fill_prompt_keys(db, 1)) == []
    assert duplicate_count(db, 1) == 2


def test_samples_and_approved_answers(db: sqlite_utils.Database) -> None:
    assert [e.id for e in sample_examples(db, 1, 100)] == list(range(1, 11))
    assert [e.id for e in sample_examples(db, 1, 5)] == [2, 4, 6, 8, 10]
    # Most given first, then by answer.
    assert approved_answers(db, 1, 10) == [("ok", 2), ("colour", 1), ("fr", 1), ("quoted", 1)]
    assert approved_answers(db, 1, 1) == [("ok", 2)]


QUERIES = {
    "counts": (
        "SELECT status, split, COUNT(*) FROM examples WHERE project_id = 1"
        " AND deleted_at IS NULL GROUP BY status, split",
        "examples_counts",
    ),
    "changed": (
        "SELECT id FROM examples WHERE project_id = 1 AND deleted_at IS NULL"
        " ORDER BY updated_at DESC, id DESC LIMIT 5",
        "examples_changed",
    ),
    "longest": (
        "SELECT id FROM examples WHERE project_id = 1 AND deleted_at IS NULL"
        " ORDER BY length(messages) DESC, id DESC LIMIT 5",
        "examples_length",
    ),
    "newest": (
        "SELECT id FROM examples WHERE project_id = 1 AND deleted_at IS NULL"
        " ORDER BY id DESC LIMIT 5",
        "examples_project",
    ),
    "queue": (
        "SELECT id FROM examples INDEXED BY examples_unanswered WHERE project_id = 1"
        " AND deleted_at IS NULL AND json_extract(messages, '$[#-1].role') != 'assistant'"
        " ORDER BY confidence IS NULL, confidence, id LIMIT 5",
        "examples_unanswered",
    ),
    "shared": (
        "SELECT prompt_key FROM examples WHERE project_id = 1 AND deleted_at IS NULL"
        " AND prompt_key IS NOT NULL GROUP BY prompt_key HAVING COUNT(*) > 1",
        "examples_prompt",
    ),
}
"""What the area asks, and the index that answers it."""


@pytest.mark.parametrize("name", QUERIES)
def test_each_query_walks_an_index_and_sorts_nothing(db: sqlite_utils.Database, name: str) -> None:
    sql, index = QUERIES[name]
    plan = " | ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
    assert f"INDEX {index}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
