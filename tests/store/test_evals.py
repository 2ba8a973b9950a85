"""Evaluations of three systems are stored and read back typed; older ones still read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlite_utils

from store.database import open_database
from store.errors import NotFoundError
from store.evals import (
    EvalItem,
    Forgetting,
    JudgeVerdict,
    LabelReport,
    PairedTest,
    latest_evaluation,
    save_evaluation,
    save_judgements,
    stored_evaluation_items,
)
from store.paths import ensure_private_dir
from store.projects import create_project
from store.runs import create_run
from trainer.control.comparison import judge_summary


@pytest.fixture()
def db_and_run(tmp_path: Path) -> tuple[sqlite_utils.Database, int]:
    db = open_database(tmp_path / "tunesmith.db")
    project = create_project(db, "p", base_model="m")
    run = create_run(
        db,
        project.id,
        config={},
        dataset_hash="0",
        dataset_size=1,
        runs_root=ensure_private_dir(tmp_path / "runs"),
    )
    return db, run.id


def test_three_systems_and_their_uncertainty_round_trip(
    db_and_run: tuple[sqlite_utils.Database, int],
) -> None:
    db, run_id = db_and_run
    item = EvalItem(
        example_id=None,
        prompt="q",
        reference="billing",
        base_output="bug",
        tuned_output="billing",
        base_scores={"exact_match": 0.0},
        tuned_scores={"exact_match": 1.0},
        few_shot_output="Billing.",
        few_shot_scores={"exact_match": 0.0},
    )
    labels = LabelReport(
        labels=("billing", "bug"),
        per_label={"billing": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}},
        accuracy={"base": 0.0, "few_shot": 1.0, "tuned": 1.0},
        macro_f1={"base": 0.0, "few_shot": 1.0, "tuned": 1.0},
        confusion={"base": [[0, 1, 0], [0, 0, 0]], "tuned": [[1, 0, 0], [0, 0, 0]]},
    )
    saved = save_evaluation(
        db,
        run_id,
        [item],
        base={"exact_match": 0.0},
        tuned={"exact_match": 1.0},
        few_shot={"exact_match": 0.0},
        shots=4,
        intervals={"tuned_minus_base": {"exact_match": (1.0, 1.0)}},
        mcnemar={"tuned_vs_base": {"exact_match": PairedTest(1, 0, 1.0)}},
        labels=labels,
        forgetting=Forgetting(n=24, drift=0.12, verdict="little drift"),
    )
    read = latest_evaluation(db, run_id)
    assert read == saved
    assert read.few_shot == {"exact_match": 0.0} and read.shots == 4
    assert read.intervals["tuned_minus_base"]["exact_match"] == (1.0, 1.0)
    assert read.labels is not None and read.labels.confusion["tuned"][0] == [1, 0, 0]
    assert [stored.item for stored in stored_evaluation_items(db, saved.id)] == [item]
    stored = json.loads(db.execute("SELECT scores FROM evals").fetchone()[0])
    assert stored["few_shot"] == {"exact_match": 0.0, "k": 4}
    assert stored["labels"]["confusion"]["labels"] == ["billing", "bug"]
    assert "json_fields" not in stored


def test_an_evaluation_stored_before_few_shot_still_reads(
    db_and_run: tuple[sqlite_utils.Database, int],
) -> None:
    db, run_id = db_and_run
    # As the two-system evaluation wrote them: base and tuned only, no few-shot columns.
    cursor = db.execute(
        "INSERT INTO evals (run_id, item_count, scores, created_at) VALUES (?, 1, ?, 't')",
        [run_id, json.dumps({"base": {"exact_match": 0.0}, "tuned": {"exact_match": 1.0}})],
    )
    db.execute(
        "INSERT INTO eval_items (eval_id, example_id, prompt, reference, base_output,"
        " tuned_output, base_scores, tuned_scores)"
        " VALUES (?, NULL, 'q', 'a', 'x', 'a', '{}', '{}')",
        [cursor.lastrowid],
    )
    evaluation = latest_evaluation(db, run_id)
    assert evaluation is not None
    assert (evaluation.base, evaluation.tuned) == ({"exact_match": 0.0}, {"exact_match": 1.0})
    assert evaluation.few_shot is None and evaluation.shots is None
    assert evaluation.intervals == {} and evaluation.mcnemar == {}
    assert evaluation.labels is None and evaluation.forgetting is None
    (item,) = stored_evaluation_items(db, evaluation.id)
    assert item.item.few_shot_output is None and item.item.few_shot_scores is None


def test_a_judges_verdicts_and_summary_are_stored_with_the_evaluation(
    db_and_run: tuple[sqlite_utils.Database, int],
) -> None:
    db, run_id = db_and_run
    items = [
        EvalItem(None, f"q{n}", "a", "b", "a", {"token_f1": 0.0}, {"token_f1": 1.0})
        for n in range(2)
    ]
    evaluation = save_evaluation(db, run_id, items, {"token_f1": 0.0}, {"token_f1": 1.0})
    first, second = stored_evaluation_items(db, evaluation.id)
    assert first.judge == {}
    verdicts = {
        first.id: {"base": JudgeVerdict(0.25, "off"), "tuned": JudgeVerdict(1.0, "right")},
        second.id: {
            "base": JudgeVerdict(None, "not judged: no verdict"),
            "tuned": JudgeVerdict(0.75, "ok"),
        },
    }
    summary = judge_summary("judge at loopback", verdicts)
    assert summary.means == {"base": 0.25, "tuned": 0.875} and summary.judged == {
        "base": 1,
        "tuned": 2,
    }
    # The lead is paired on the one row both answers were judged.
    assert summary.intervals["tuned_minus_base"] == (0.75, 0.75)
    judged = save_judgements(db, evaluation, verdicts, summary)
    assert latest_evaluation(db, run_id) == judged and judged.judge == summary
    stored = stored_evaluation_items(db, evaluation.id)
    assert stored[1].judge["base"] == JudgeVerdict(None, "not judged: no verdict")
    assert stored[0].judge["tuned"].rationale == "right"
    with pytest.raises(NotFoundError, match="has no item"):
        save_judgements(db, evaluation, {10_000: {"tuned": JudgeVerdict(1.0, "x")}}, summary)
    # The failed save stored nothing of its own.
    assert latest_evaluation(db, run_id) == judged
