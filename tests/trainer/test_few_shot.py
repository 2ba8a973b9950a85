"""Label tasks are recognised, and few-shot prompts are spread over labels, fit and stable."""

from __future__ import annotations

from collections.abc import Iterator

from trainer.control.few_shot import (
    MAX_SHOT_CHARS,
    Shot,
    choose_shots,
    few_shot_messages,
    shot_count,
)
from trainer.control.labels import match_answer, spec_labels, task_labels


def test_the_spec_labels_win() -> None:
    assert task_labels(["billing", " bug ", "billing"], ["anything"]) == ("billing", "bug")


def test_the_spec_names_labels_only_for_a_label_task() -> None:
    assert spec_labels({"output": {"kind": "labels", "labels": ["a", "b", 3]}}) == ("a", "b")
    # A JSON task's labels are one field's values, not whole answers.
    assert spec_labels({"output": {"kind": "json", "labels": ["a", "b"]}}) == ()
    assert spec_labels({}) == () and spec_labels({"output": "labels"}) == ()


def test_a_few_repeated_short_answers_are_labels_most_common_first() -> None:
    answers = ["greet", "refund", "refund", "greet", "refund", "cancel", "cancel"]
    assert task_labels([], answers) == ("refund", "greet", "cancel")


def test_free_text_json_and_unique_answers_are_not_labels() -> None:
    assert task_labels([], ["a long answer " * 5, "a long answer " * 5]) == ()
    assert task_labels([], ['{"a": 1}', '{"a": 1}', '{"a": 2}', '{"a": 2}']) == ()
    assert task_labels([], [f"answer {n}" for n in range(10)]) == ()
    assert task_labels([], ["yes", "yes"]) == ()
    assert task_labels([], [f"l{n % 31}" for n in range(93)]) == ()


def test_free_text_answers_are_read_only_until_they_cannot_be_labels() -> None:
    read: list[int] = []

    def answers() -> Iterator[str]:
        for n in range(1_000_000):
            read.append(n)
            yield f"a free answer number {n}"

    assert task_labels([], answers()) == () and len(read) == 31


def test_answers_match_labels_aside_from_case_and_punctuation() -> None:
    assert match_answer(("billing", "bug"), " Billing.") == "billing"
    assert match_answer(("billing", "bug"), "billing issue") is None


def test_shots_are_spread_over_labels_in_order_and_deterministic() -> None:
    rows = [Shot(f"q{n}", label) for n, label in enumerate("aaabbc")]
    chosen = choose_shots(rows, ("a", "b", "c"), 5)
    assert [(s.input, s.answer) for s in chosen] == [
        ("q0", "a"),
        ("q3", "b"),
        ("q5", "c"),
        ("q1", "a"),
        ("q4", "b"),
    ]
    assert choose_shots(rows, ("a", "b", "c"), 5) == chosen
    assert shot_count(("a", "b", "c", "d", "e")) == 10 and shot_count(()) == 8


def test_rows_too_long_to_show_are_left_out() -> None:
    rows = [Shot("x" * (MAX_SHOT_CHARS + 1), "a"), Shot("short", "a")]
    assert choose_shots(rows, (), 2) == [Shot("short", "a")]


def test_the_messages_are_system_shots_then_the_row() -> None:
    messages = few_shot_messages([Shot("hi", "greet")], "refund me", "Label it.")
    assert messages == [
        {"role": "system", "content": "Label it."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "greet"},
        {"role": "user", "content": "refund me"},
    ]
