"""Scores of answers against references, on strings whose scores are known."""

from __future__ import annotations

import json

import pytest

from trainer.control.scoring import (
    METRICS,
    LabelScore,
    json_equal,
    json_field_accuracy,
    label_metrics,
    mean_scores,
    normalize,
    score,
    token_f1,
)


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


# Six rows over five labels, worked out by hand below:
# - billing: true 3 times, answered twice (rows 0 and 1), right both times;
# - bug: true twice, answered once (row 3 says "BUG"), right; row 4 names no label;
# - refund: never true, answered twice (rows 2 and 5);
# - praise: true once, never answered;
# - spam: neither true nor answered.
LABELS = ("billing", "bug", "refund", "praise", "spam")
REFERENCES = ["billing", "billing", "billing", "bug", "bug", "praise"]
ANSWERS = ["billing", "Billing.", "refund", "BUG", "no idea", "refund"]


def test_label_metrics_per_label_numbers() -> None:
    metrics = label_metrics(ANSWERS, REFERENCES, LABELS)
    assert metrics.labels == LABELS
    assert metrics.accuracy == pytest.approx(3 / 6)
    assert list(metrics.per_label) == list(LABELS)
    billing = metrics.per_label["billing"]
    assert (billing.precision, billing.recall, billing.support) == pytest.approx((1.0, 2 / 3, 3))
    # 2 * 1 * (2/3) / (1 + 2/3)
    assert billing.f1 == pytest.approx(4 / 5)
    bug = metrics.per_label["bug"]
    assert (bug.precision, bug.recall, bug.support) == pytest.approx((1.0, 1 / 2, 2))
    # 2 * 1 * 0.5 / (1 + 0.5)
    assert bug.f1 == pytest.approx(2 / 3)


def test_a_label_never_answered_or_never_true_scores_zero_not_nan() -> None:
    metrics = label_metrics(ANSWERS, REFERENCES, LABELS)
    # Never answered: precision has nothing to divide by and is 0 (sklearn's zero_division=0).
    assert metrics.per_label["praise"] == LabelScore(precision=0.0, recall=0.0, f1=0.0, support=1)
    # Never true: answered twice, both wrong; recall has nothing to divide by and is 0.
    assert metrics.per_label["refund"] == LabelScore(precision=0.0, recall=0.0, f1=0.0, support=0)
    assert metrics.per_label["spam"] == LabelScore(precision=0.0, recall=0.0, f1=0.0, support=0)


def test_macro_f1_averages_the_labels_this_set_has_seen() -> None:
    metrics = label_metrics(ANSWERS, REFERENCES, LABELS)
    # billing, bug, refund (answered) and praise (true) count; spam, seen nowhere, does not.
    assert metrics.macro_f1 == pytest.approx((4 / 5 + 2 / 3 + 0 + 0) / 4)


def test_confusion_matrix_rows_are_truth_and_the_last_column_is_no_label() -> None:
    metrics = label_metrics(ANSWERS, REFERENCES, LABELS)
    # Columns: billing, bug, refund, praise, spam, other.
    assert metrics.confusion == [
        [2, 0, 1, 0, 0, 0],
        [0, 1, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    assert sum(map(sum, metrics.confusion)) == len(REFERENCES)


def test_label_metrics_record_is_plain_json() -> None:
    record = label_metrics(ANSWERS, REFERENCES, LABELS).to_record()
    assert json.loads(json.dumps(record)) == record
    assert record["labels"] == list(LABELS)
    assert record["per_label"]["bug"] == {  # type: ignore[index]
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert record["macro_f1"] == pytest.approx(11 / 30)
    assert record["confusion"][1] == [0, 1, 0, 0, 0, 1]  # type: ignore[index]


def test_a_reference_that_is_no_label_becomes_a_label_after_them() -> None:
    metrics = label_metrics(["yes", "maybe", "yes"], ["Yes", "maybe", "no"], ("yes", "no"))
    assert metrics.labels == ("yes", "no", "maybe")
    assert metrics.confusion == [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]]
    assert metrics.accuracy == pytest.approx(2 / 3)
    assert metrics.per_label["maybe"].f1 == 1.0


def test_label_metrics_refuse_unpaired_or_empty_rows() -> None:
    with pytest.raises(ValueError, match="2 answers for 1 references"):
        label_metrics(["a", "b"], ["a"], ("a", "b"))
    with pytest.raises(ValueError, match="at least one row"):
        label_metrics([], [], ("a", "b"))


def test_json_field_accuracy_per_top_level_field() -> None:
    references = [
        '{"intent": "refund", "priority": "high"}',
        '{"intent": "bug", "priority": "low", "order": null}',
        '{"intent": "bug", "order": null, "urgent": true}',
        "plain text",
        "[1, 2]",
    ]
    answers = [
        '{"intent": "refund", "priority": "low"}',
        "not json",
        '{"urgent": 1, "order": null, "intent": "Bug"}',
        '{"intent": "bug"}',
        "[1, 2]",
    ]
    accuracy = json_field_accuracy(answers, references)
    # Fields in first-seen order; rows whose reference is no object count for no field.
    assert list(accuracy) == ["intent", "priority", "order", "urgent"]
    assert accuracy["intent"] == pytest.approx(1 / 3)
    assert accuracy["priority"] == 0.0
    # The invalid answer misses its null field; the third row matches it.
    assert accuracy["order"] == pytest.approx(1 / 2)
    # true is not 1.
    assert accuracy["urgent"] == 0.0


def test_json_field_accuracy_counts_a_missing_field_or_a_non_object_answer_as_wrong() -> None:
    references = ['{"a": null}', '{"a": null}', '{"a": null}']
    assert json_field_accuracy(['{"a": null}', "{}", "[null]"], references) == {
        "a": pytest.approx(1 / 3)
    }
    assert json_field_accuracy(["red"], ["red"]) == {}
    with pytest.raises(ValueError):
        json_field_accuracy(["{}"], [])
