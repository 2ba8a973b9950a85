"""Checks before training: leaks from eval to train, duplicates, label balance, long rows."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlite_utils

from agent.data_checks import (
    LEAK_OVERLAP,
    ONE_WORD_MAX_WORDS,
    ONE_WORD_MIN_WORDS,
    Leak,
    TokenLengths,
    check_data,
    find_leaks,
)
from agent.dedupe import jaccard
from agent.spec import TaskSpec
from store.database import open_database
from store.examples import (
    ChatMessage,
    Example,
    NewExample,
    add_examples,
    list_examples,
    prompt_response,
    unlabeled_example,
)
from store.imports import read_examples
from store.projects import create_project
from store.vocabulary import ExampleSplit
from tests.repo import REPO

DEMO = REPO / "examples" / "support_emails.jsonl"
EMAIL = (
    "Hello, I ordered a pair of walking boots three weeks ago and they still have not arrived."
    " The tracking page has said in transit since the first week. Could you look into it and"
    " tell me when they will come? Thanks, Maria"
)
LABELS = TaskSpec(output_kind="labels", labels=("billing", "shipping", "technical"))


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    return open_database(tmp_path / "t.db")


def _store(
    db: sqlite_utils.Database,
    train: Sequence[tuple[str, str]],
    evaluation: Sequence[tuple[str, str]] = (),
) -> list[Example]:
    """The project's rows after adding ``train`` then ``evaluation`` (prompt, answer) pairs."""
    project_id = create_project(db, "p").id
    splits: tuple[tuple[ExampleSplit, Sequence[tuple[str, str]]], ...] = (
        ("train", train),
        ("eval", evaluation),
    )
    for split, rows in splits:
        add_examples(
            db,
            project_id,
            [prompt_response(prompt, answer) for prompt, answer in rows],
            source="typed",
            split_mode=split,
        )
    return list_examples(db, project_id)


def _id(examples: Sequence[Example], prompt: str) -> int:
    return next(e.id for e in examples if e.prompt == prompt)


def test_planted_leaks_are_found_with_their_ids_and_measure(db: sqlite_utils.Database) -> None:
    reworded = EMAIL.replace("three weeks", "two weeks").replace("Thanks", "Cheers")
    examples = _store(
        db,
        train=[
            ("reset my password please", "technical"),
            (EMAIL, "shipping"),
            ("Why was I charged twice for one subscription this month?", "billing"),
        ],
        evaluation=[
            ("  RESET my password, please!", "technical"),
            ("reset my password now", "technical"),
            ("reset my password", "technical"),
            (reworded, "shipping"),
            ("The app closes as soon as I open the camera screen.", "technical"),
        ],
    )
    findings = check_data(examples, LABELS)
    password, email = _id(examples, "reset my password please"), _id(examples, EMAIL)
    assert [(leak.eval_id, leak.train_id, leak.kind) for leak in findings.leaks] == [
        (_id(examples, "  RESET my password, please!"), password, "exact"),
        (_id(examples, "reset my password now"), password, "one_word"),
        (_id(examples, "reset my password"), password, "one_word"),
        (_id(examples, reworded), email, "overlap"),
    ]
    exact, changed, removed, overlap = (leak.similarity for leak in findings.leaks)
    assert exact == 1.0
    # Three of four words kept, whether one was changed or one removed.
    assert changed == removed == pytest.approx(0.75)
    assert LEAK_OVERLAP <= overlap < 1.0
    assert findings.warnings[1].startswith(
        f"eval example {findings.leaks[1].eval_id} repeats train example {password}"
        " (one word apart, similarity 0.75): reset my password now"
    )


def test_the_demo_set_leaks_only_where_an_eval_email_reuses_a_train_email_template(
    db: sqlite_utils.Database,
) -> None:
    # The demo's emails are written from templates: seven eval emails repeat a train email
    # word for word except the name and the order id. The template also fixes the issue, so
    # those rows score the model's memory of it: a true finding, not noise.
    project_id = create_project(db, "support").id
    add_examples(db, project_id, read_examples(DEMO).examples, source="imported")
    examples = list_examples(db, project_id)
    findings = check_data(examples, TaskSpec())
    assert findings.rows == {"train": 60, "eval": 20}
    by_id = {e.id: e for e in examples}
    pairs = [(leak.eval_id, leak.train_id) for leak in findings.leaks]
    assert pairs == [(63, 3), (66, 6), (68, 8), (69, 9), (72, 12), (75, 15), (78, 18)]
    for leak in findings.leaks:
        assert leak.kind == "overlap" and LEAK_OVERLAP <= leak.similarity < 0.9
        eval_answer = json.loads(by_id[leak.eval_id].response)
        train_answer = json.loads(by_id[leak.train_id].response)
        assert eval_answer["issue"] == train_answer["issue"]
        assert eval_answer["name"] != train_answer["name"]
        assert eval_answer["order_id"] != train_answer["order_id"]
    assert findings.duplicates == {"train": (), "eval": ()}
    # Its answers are JSON, not labels; the spec names none.
    assert findings.balance is None


def test_honest_short_rows_of_a_label_task_give_no_leak(db: sqlite_utils.Database) -> None:
    examples = _store(
        db,
        train=[
            ("where is my parcel", "shipping"),
            ("my card was charged twice", "billing"),
            ("the app crashes when I log in", "technical"),
            ("can I get a refund for last month", "billing"),
        ],
        evaluation=[
            ("my delivery has not arrived yet", "shipping"),
            ("why is there an extra fee on my bill", "billing"),
            ("the screen goes black after the update", "technical"),
        ],
    )
    findings = check_data(examples, LABELS)
    assert findings.leaks == ()
    assert findings.duplicates == {"train": (), "eval": ()}


def test_leaks_found_through_the_index_are_those_every_pair_comparison_finds() -> None:
    # A small vocabulary makes many near pairs; the index must lose none of them.
    rng = random.Random(7)
    vocabulary = [f"w{i}" for i in range(12)]

    def row() -> tuple[str, ...]:
        return tuple(rng.choices(vocabulary, k=rng.randint(1, 16)))

    train = [(i, row()) for i in range(300)]
    evaluation = [(1000 + i, row()) for i in range(150)]
    # Plant edits of train rows so the one-word measure has work to do.
    for index in range(0, 150, 3):
        tokens = list(train[index][1])
        tokens[rng.randrange(len(tokens))] = "planted"
        evaluation.append((2000 + index, tuple(tokens)))
    expected = {
        (eval_id, train_id): kind
        for eval_id, eval_tokens in evaluation
        for train_id, train_tokens in train
        if (kind := _reference_kind(eval_tokens, train_tokens)) is not None
    }
    found = {(leak.eval_id, leak.train_id): leak.kind for leak in find_leaks(train, evaluation)}
    assert any(kind == "one_word" for kind in expected.values())
    assert any(kind == "overlap" for kind in expected.values())
    assert found == expected


def _reference_kind(first: tuple[str, ...], second: tuple[str, ...]) -> str | None:
    """The measure that fires for a pair, compared the slow way (ties go to overlap)."""
    if first == second:
        return "exact"
    overlap = jaccard(frozenset(first), frozenset(second))
    longer = max(len(first), len(second))
    one_word = (
        ONE_WORD_MIN_WORDS <= longer <= ONE_WORD_MAX_WORDS and _edit_distance(first, second) == 1
    )
    kept = 1 - 1 / longer
    if one_word and (overlap < LEAK_OVERLAP or kept > overlap):
        return "one_word"
    return "overlap" if overlap >= LEAK_OVERLAP else None


def _edit_distance(first: Sequence[str], second: Sequence[str]) -> int:
    previous = list(range(len(second) + 1))
    for i, word in enumerate(first, 1):
        current = [i]
        for j, other in enumerate(second, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other))
            )
        previous = current
    return previous[-1]


def test_duplicates_are_grouped_within_each_split_and_pending_rows_ignored(
    db: sqlite_utils.Database,
) -> None:
    examples = _store(
        db,
        train=[
            ("Where is my order?", "shipping"),
            ("where is my ORDER", "shipping"),
            ("Where  is my order!", "billing"),
            ("I was billed twice", "billing"),
        ],
        evaluation=[("The app crashes", "technical"), ("the app crashes.", "technical")],
    )
    add_examples(
        db,
        examples[0].project_id,
        [unlabeled_example("I was billed twice!")],
        source="imported",
        status="pending",
    )
    findings = check_data(list_examples(db, examples[0].project_id), LABELS)
    ids = [e.id for e in examples]
    assert findings.duplicates == {
        "train": ((ids[0], ids[1], ids[2]),),
        "eval": ((ids[4], ids[5]),),
    }
    assert findings.leaks == ()
    assert (
        f"train: examples {ids[0]}, {ids[1]} and {ids[2]} have the same input: Where is my order?"
        in findings.warnings
    )


def test_inputs_are_the_turns_before_the_answer_without_the_system_prompt(
    db: sqlite_utils.Database,
) -> None:
    def conversation(split: ExampleSplit, *turns: tuple[str, str]) -> NewExample:
        messages = tuple(ChatMessage(role, content) for role, content in turns)
        return NewExample(messages=messages, split=split)

    greeting = (("user", "Hi"), ("assistant", "Hello"))
    rows = [
        conversation(
            "train",
            ("system", "You sort tickets."),
            *greeting,
            ("user", "my parcel is late"),
            ("assistant", "shipping"),
        ),
        # The same first turn, then another question: no leak.
        conversation(
            "eval", *greeting, ("user", "my card was charged twice"), ("assistant", "billing")
        ),
        # The same turns under another system prompt, with another answer: a leak.
        conversation(
            "eval",
            ("system", "Other system prompt."),
            *greeting,
            ("user", "my parcel is late"),
            ("assistant", "late delivery"),
        ),
    ]
    project_id = create_project(db, "p").id
    add_examples(db, project_id, rows, source="imported")
    train, _, same_turns = (e.id for e in list_examples(db, project_id))
    findings = check_data(list_examples(db, project_id), TaskSpec())
    assert [(leak.eval_id, leak.train_id, leak.kind) for leak in findings.leaks] == [
        (same_turns, train, "exact")
    ]


def test_label_balance_counts_each_split_and_warns_of_rare_and_missing_labels(
    db: sqlite_utils.Database,
) -> None:
    train = [(f"charge question {i}", "billing") for i in range(10)]
    train += [("parcel question one", "Shipping."), ("a question of my own", "refund")]
    evaluation = [
        ("eval charge", "billing"),
        ("eval parcel", "shipping"),
        ("eval bug", "technical"),
    ]
    examples = _store(db, train, evaluation)
    findings = check_data(examples, LABELS, labels=LABELS.labels)
    assert findings.balance is not None
    assert dict(findings.balance.train) == {"billing": 10, "shipping": 1, "technical": 0}
    assert dict(findings.balance.eval) == {"billing": 1, "shipping": 1, "technical": 1}
    assert dict(findings.balance.unmatched) == {"train": 1, "eval": 0}
    assert findings.warnings == (
        "label 'technical' has no train rows: the model cannot learn it",
        "label 'shipping' has 1 train row, under a fifth of 'billing' (10): add rows of it",
    )


def test_a_label_with_a_fifth_of_the_commonest_rows_is_not_rare(db: sqlite_utils.Database) -> None:
    train = [(f"charge {i}", "billing") for i in range(10)] + [
        ("parcel a", "shipping"),
        ("parcel b", "shipping"),
    ]
    findings = check_data(_store(db, train), LABELS, labels=("billing", "shipping"))
    assert findings.warnings == ()
    assert findings.balance is not None and dict(findings.balance.train) == {
        "billing": 10,
        "shipping": 2,
    }


def test_labels_inside_json_answers_are_counted_by_their_field(db: sqlite_utils.Database) -> None:
    spec = TaskSpec(output_kind="json", json_fields=("issue",), labels=("billing", "shipping"))
    examples = _store(db, [("one", '{"issue": "billing"}'), ("two", '{"issue": "shipping"}')])
    findings = check_data(examples, spec, labels=spec.labels)
    assert findings.balance is not None
    assert dict(findings.balance.train) == {"billing": 1, "shipping": 1}
    # No labels, no balance: the caller found none (free text).
    assert check_data(examples, spec, labels=()).balance is None


def test_rows_longer_than_the_context_are_named_with_their_length(
    db: sqlite_utils.Database,
) -> None:
    examples = _store(db, [("short", "a"), ("long " * 50, "b")], [("long eval " * 50, "c")])
    short, long_train, long_eval = (e.id for e in examples)
    lengths = {short: 8, long_train: 60, long_eval: 110}
    findings = check_data(examples, TaskSpec(), lengths=TokenLengths(lengths, context=50))
    assert [(row.id, row.tokens, row.context) for row in findings.too_long] == [
        (long_train, 60, 50),
        (long_eval, 110, 50),
    ]
    assert findings.warnings[-1] == (
        f"example {long_eval} is 110 tokens, more than the model's context of 50:"
        " a run would fail on it"
    )
    estimated = check_data(examples, TaskSpec(), lengths=TokenLengths(lengths, 50, exact=False))
    assert f"example {long_train} is about 60 tokens" in estimated.warnings[0]
    # An unknown context flags nothing.
    assert check_data(examples, TaskSpec(), lengths=TokenLengths(lengths, None)).too_long == ()


def test_the_record_has_every_finding_as_json(db: sqlite_utils.Database) -> None:
    examples = _store(
        db,
        [("reset my password please", "technical"), ("a b c", "billing"), ("A B C", "billing")],
        [("reset my password now", "technical")],
    )
    lengths = TokenLengths({e.id: 5 for e in examples} | {examples[1].id: 99}, context=20)
    findings = check_data(examples, LABELS, labels=LABELS.labels, lengths=lengths)
    record = json.loads(json.dumps(findings.to_record()))
    ids = [e.id for e in examples]
    assert record == {
        "rows": {"train": 3, "eval": 1},
        "leaks": [{"eval_id": ids[3], "train_id": ids[0], "similarity": 0.75, "kind": "one_word"}],
        "duplicates": {"train": [[ids[1], ids[2]]], "eval": []},
        "balance": {
            "labels": ["billing", "shipping", "technical"],
            "train": {"billing": 2, "shipping": 0, "technical": 1},
            "eval": {"billing": 0, "shipping": 0, "technical": 1},
            "unmatched": {"train": 0, "eval": 0},
        },
        "too_long": [{"id": ids[1], "tokens": 99, "context": 20}],
        "warnings": list(findings.warnings),
    }
    assert len(record["warnings"]) == 4


def test_a_leak_is_reported_once_per_pair_with_its_strongest_measure() -> None:
    short = ("reset", "my", "password", "please")
    leaks = find_leaks([(1, short), (2, short[:3])], [(9, short)])
    assert leaks == [Leak(9, 1, 1.0, "exact"), Leak(9, 2, 0.75, "one_word")]
