"""An evaluation reads the same everywhere: three systems, leads with intervals, the headline in
words, per-label and per-field tables, the drift; older two-system evaluations still read."""

from __future__ import annotations

from store.evals import Evaluation, Forgetting, JudgeSummary, LabelReport, PairedTest
from trainer.control.eval_report import (
    change_cell,
    field_lines,
    headline,
    label_lines,
    metric_rows,
    primary_metric,
    summary_lines,
)


def three_systems(**changes: object) -> Evaluation:
    fields: dict[str, object] = {
        "id": 1,
        "run_id": 3,
        "n": 40,
        "base": {"exact_match": 0.0, "token_f1": 0.2},
        "tuned": {"exact_match": 0.95, "token_f1": 0.97},
        "created_at": "2026-12-02T04:00:00",
        "few_shot": {"exact_match": 0.25, "token_f1": 0.5},
        "shots": 8,
        "intervals": {
            "tuned_minus_base": {"exact_match": (0.875, 1.0), "token_f1": (0.7, 0.85)},
            "tuned_minus_few_shot": {"exact_match": (0.55, 0.85), "token_f1": (0.3, 0.6)},
        },
        "mcnemar": {
            "tuned_vs_base": {"exact_match": PairedTest(38, 0, 7e-12)},
            "tuned_vs_few_shot": {"exact_match": PairedTest(28, 0, 7e-9)},
        },
        "forgetting": Forgetting(n=20, drift=0.07, verdict="little drift"),
    }
    fields.update(changes)
    return Evaluation(**fields)  # type: ignore[arg-type]


def test_every_metric_has_three_systems_and_two_leads() -> None:
    rows = metric_rows(three_systems())
    assert [(row.label, row.base, row.few_shot, row.tuned) for row in rows] == [
        ("exact match", 0.0, 0.25, 0.95),
        ("token F1", 0.2, 0.5, 0.97),
    ]
    assert rows[0].over_base == (0.875, 1.0) and rows[0].over_few_shot == (0.55, 0.85)


def test_the_table_prints_leads_with_intervals_the_headline_and_the_drift() -> None:
    lines = summary_lines(three_systems())
    assert lines[0].split() == ["metric", "base", "few-shot", "tuned", "tuned-base", "tuned-few"]
    assert lines[1] == (
        "exact match         0.0%     25.0%   95.0%   +95 [88, 100]    +70 [55, 85]"
    )
    assert "Few-shot: the base model shown 8 examples from the train split." in lines
    assert "Tuned beats base by 95 points [88, 100] on exact match (McNemar p < 0.001)." in lines
    assert "Tuned beats few-shot by 70 points [55, 85] on exact match (McNemar p < 0.001)." in lines
    assert lines[-1] == "Forgetting: drift +0.07 nats/token on 20 general prompts (little drift)"


def test_a_small_set_says_there_is_no_clear_difference() -> None:
    evaluation = three_systems(
        n=12,
        tuned={"exact_match": 0.33, "token_f1": 0.5},
        intervals={
            "tuned_minus_base": {"exact_match": (0.1, 0.55)},
            "tuned_minus_few_shot": {"exact_match": (-0.17, 0.33)},
        },
        mcnemar={},
    )
    assert headline(evaluation) == [
        "Tuned beats base by 33 points [10, 55] on exact match.",
        "No clear difference between tuned and few-shot on exact match, [-17, 33] points over "
        "12 rows: add eval rows.",
    ]


def test_a_json_task_is_summed_up_by_json_equality() -> None:
    evaluation = three_systems(
        base={"exact_match": 0.0, "json_valid": 0.5, "json_equal": 0.0},
        tuned={"exact_match": 0.8, "json_valid": 1.0, "json_equal": 0.9},
        few_shot={"exact_match": 0.1, "json_valid": 0.9, "json_equal": 0.2},
        intervals={},
        json_fields={
            "base": {"name": 0.1, "order_id": 0.0},
            "few_shot": {"name": 0.5, "order_id": 0.3},
            "tuned": {"name": 1.0, "order_id": 0.85},
        },
    )
    assert primary_metric(evaluation) == "json_equal"
    assert field_lines(evaluation) == [
        "field         base  few-shot     tuned",
        "name         10.0%     50.0%    100.0%",
        "order_id      0.0%     30.0%     85.0%",
    ]
    # Without intervals there is nothing to say in words.
    assert headline(evaluation) == []


def test_a_two_system_evaluation_from_before_still_reads() -> None:
    old = Evaluation(
        id=1,
        run_id=1,
        n=3,
        base={"exact_match": 0.0},
        tuned={"exact_match": 2 / 3},
        created_at="2026-01-01T00:00:00",
    )
    lines = summary_lines(old)
    assert lines[0].split() == ["metric", "base", "tuned", "tuned-base"]
    assert lines[1].split() == ["exact", "match", "0.0%", "66.7%", "+66.7", "pts"]
    assert len(lines) == 2
    assert change_cell(None, None) == "-"


def test_a_label_task_shows_per_label_scores_and_the_tuned_confusion_matrix() -> None:
    report = LabelReport(
        labels=("billing", "bug"),
        per_label={
            "billing": {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2},
            "bug": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1},
        },
        accuracy={"base": 0.0, "few_shot": 1 / 3, "tuned": 2 / 3},
        macro_f1={"base": 0.0, "few_shot": 0.25, "tuned": 2 / 3},
        confusion={"tuned": [[1, 1, 0], [0, 1, 0]]},
    )
    lines = label_lines(three_systems(labels=report))
    assert lines[:3] == [
        "label    precision  recall     F1  support",
        "billing       1.00    0.50   0.67        2",
        "bug           0.50    1.00   0.67        1",
    ]
    assert "few-shot: accuracy 33.3%, macro-F1 0.25" in lines
    assert lines[-4] == "Tuned confusion (rows: truth, columns: answer):"
    assert lines[-3].split() == ["billing", "bug", "other"]
    assert lines[-2].split() == ["billing", "1", "1", "0"]
    assert lines[-1].split() == ["bug", "0", "1", "0"]
    assert label_lines(three_systems()) == []


def test_a_judged_evaluation_has_a_judge_row_and_says_it_in_words() -> None:
    judge = JudgeSummary(
        model="gpt-4o-mini at api.openai.com",
        means={"base": 0.25, "few_shot": 0.5, "tuned": 0.9},
        judged={"base": 40, "few_shot": 40, "tuned": 39},
        intervals={"tuned_minus_base": (0.5, 0.8), "tuned_minus_few_shot": (0.2, 0.6)},
    )
    evaluation = three_systems(judge=judge)
    assert [row.label for row in metric_rows(evaluation)][-1] == "judge"
    lines = summary_lines(evaluation)
    assert lines[3].split() == [
        "judge",
        "25.0%",
        "50.0%",
        "90.0%",
        "+65",
        "[50,",
        "80]",
        "+40",
        "[20,",
        "60]",
    ]
    assert (
        "Judge: gpt-4o-mini at api.openai.com graded 119 answers from 1 to 5 against the task's"
        " rules and the reference (shown from 0% for 1 to 100% for 5)." in lines
    )
    assert "Tuned beats few-shot by 40 points [20, 60] on the judge's score." in headline(
        evaluation
    )
