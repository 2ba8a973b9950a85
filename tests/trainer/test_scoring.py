"""Scores of answers against references, on strings whose scores are known."""

from __future__ import annotations

import pytest

from trainer.control.scoring import METRICS, json_equal, mean_scores, normalize, score, token_f1


def test_exact_match_ignores_surrounding_whitespace_only() -> None:
    assert score("  red\n", "red")["exact_match"] == 1.0
    assert score("Red", "red")["exact_match"] == 0.0
    assert score("red.", "red")["exact_match"] == 0.0


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("Red.", "red"),
        ("  THE   colour\tis red! ", "the colour is red"),
        ("“Red”…", "red"),
        ("Don't!", "don t"),
    ],
)
def test_normalized_match_ignores_case_whitespace_and_punctuation(
    answer: str, reference: str
) -> None:
    assert score(answer, reference)["normalized_match"] == 1.0


def test_normalized_match_still_tells_words_apart() -> None:
    assert score("red", "read")["normalized_match"] == 0.0
    assert normalize("  Hello,   WORLD!\n") == "hello world"


def test_token_f1_values() -> None:
    assert token_f1("the cat sat", "the cat sat") == 1.0
    assert token_f1("dog", "the cat sat") == 0.0
    # 2 of 4 answer words are right (precision 1/2), 2 of 3 reference words found (recall 2/3).
    assert token_f1("the cat ran away", "the cat sat") == pytest.approx(4 / 7)
    # Repeated words count once per occurrence in the reference.
    assert token_f1("red red red", "red") == pytest.approx(0.5)
    assert token_f1("", "") == 1.0
    assert token_f1("", "red") == 0.0


def test_json_metrics_apply_only_when_the_reference_is_json() -> None:
    plain = score('{"colour": "red"}', "red")
    assert plain["json_valid"] is None and plain["json_equal"] is None
    # A bare JSON scalar is a word or a number, not a JSON answer.
    assert score("42", "42")["json_valid"] is None
    valid_unequal = score('{"colour": "blue"}', '{"colour": "red"}')
    assert valid_unequal["json_valid"] == 1.0 and valid_unequal["json_equal"] == 0.0
    invalid = score('{"colour": "red"', '{"colour": "red"}')
    assert invalid["json_valid"] == 0.0 and invalid["json_equal"] == 0.0


def test_json_equality_ignores_layout_and_key_order() -> None:
    reordered = score('{ "b": [1, 2],\n "a": "x" }', '{"a":"x","b":[1,2]}')
    assert reordered["json_equal"] == 1.0
    assert reordered["exact_match"] == 0.0


def test_json_equality_keeps_true_apart_from_one() -> None:
    assert score('{"ok": 1}', '{"ok": true}')["json_equal"] == 0.0
    assert json_equal({"n": 1}, {"n": 1.0})
    assert not json_equal([True], [1])
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})


def test_mean_is_taken_over_the_items_where_a_metric_applies() -> None:
    items = [
        score("red", "red"),
        score("blue", "red"),
        score('{"a": 1}', '{"a": 1}'),
        score("not json", '{"a": 1}'),
    ]
    means = mean_scores(items)
    assert set(means) == set(METRICS)
    assert means["exact_match"] == pytest.approx(2 / 4)
    # Only the two JSON references count for the JSON metrics.
    assert means["json_valid"] == pytest.approx(1 / 2)
    assert means["json_equal"] == pytest.approx(1 / 2)
    no_json = mean_scores([score("red", "red"), score("blue", "red")])
    assert no_json["json_valid"] is None and no_json["token_f1"] == pytest.approx(0.5)
    assert mean_scores([]) == dict.fromkeys(METRICS)
