"""A run's snapshot: the approved rows of each split, counted in SQL and written as they are
read, with the digest of every file; validation rows carved from a large enough train split."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from store.database import open_database
from store.example_edits import ExampleUpdate, update_examples
from store.examples import add_examples, prompt_response
from store.projects import create_project
from trainer.control.config import plan_run, validation_count
from trainer.control.jobs import approved_rows, prepare_run
from trainer.control.snapshot import (
    EVAL_FILE,
    TRAIN_FILE,
    VALIDATION_FILE,
    read_snapshot_rows,
    validation_ids,
)


def test_the_snapshot_holds_the_approved_rows_of_each_split(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "p")
    add_examples(
        db,
        project.id,
        [prompt_response(f"q{n}", f"a{n}") for n in range(1, 13)],
        source="typed",
        split_mode="train",
    )
    update_examples(db, [ExampleUpdate(n, split="eval") for n in (3, 6, 9)])
    update_examples(db, [ExampleUpdate(n, status="rejected") for n in (2, 9)])
    approved_train = [1, 4, 5, 7, 8, 10, 11, 12]
    train, evaluation = approved_rows(db, project)
    assert (len(train), len(evaluation)) == (8, 2)
    assert [e.id for e in train] == approved_train

    run = prepare_run(db, project, plan_run(len(train), len(evaluation), None))
    assert run.run_dir is not None and run.dataset_size == 8
    folder = Path(run.run_dir)
    assert [row["id"] for row in read_snapshot_rows(folder / TRAIN_FILE)] == approved_train
    assert [row["id"] for row in read_snapshot_rows(folder / EVAL_FILE)] == [3, 6]
    first = json.loads((folder / TRAIN_FILE).read_text(encoding="utf-8").splitlines()[0])
    assert first == {
        "id": 1,
        "messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}],
    }
    digest = hashlib.sha256()
    for name in (TRAIN_FILE, EVAL_FILE):
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
    assert run.dataset_hash == digest.hexdigest()


def test_a_large_enough_train_split_gives_up_validation_rows_and_keeps_eval_apart(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "p")
    rows = [prompt_response(f"q{n}", f"a{n}") for n in range(1, 106)]
    add_examples(db, project.id, rows, source="typed", split_mode="train")
    update_examples(db, [ExampleUpdate(n, split="eval") for n in range(101, 106)])
    train, evaluation = approved_rows(db, project)
    plan = plan_run(len(train), len(evaluation), None)
    # 12 of the 100 train rows validate: 88 train, in batches of 8, for up to 6 epochs (the
    # fixed plan's 2, three times over), checked twice an epoch.
    assert plan.config.max_steps == 66 and plan.config.epochs == 6
    assert plan.config.eval_every == plan.config.save_every == 6
    assert plan.reasons["epochs"].startswith("up to 6 passes: it stops by itself")
    assert plan.reasons["eval_every"].startswith(
        "every 6 steps, twice an epoch: answers to 12 of the 12 validation rows (12% of train"
    )
    assert plan.reasons["eval_every"].endswith("The 5 eval rows stay the final test")

    runs = [prepare_run(db, project, plan) for _ in range(2)]
    carved = []
    for run in runs:
        assert run.run_dir is not None and run.dataset_size == 88
        folder = Path(run.run_dir)
        trained = {row["id"] for row in read_snapshot_rows(folder / TRAIN_FILE)}
        validation = {row["id"] for row in read_snapshot_rows(folder / VALIDATION_FILE)}
        held_out = {row["id"] for row in read_snapshot_rows(folder / EVAL_FILE)}
        assert len(trained) == 88 and len(validation) == 12 and held_out == set(range(101, 106))
        assert trained | validation == set(range(1, 101)) and not trained & validation
        digest = hashlib.sha256()
        for name in (TRAIN_FILE, VALIDATION_FILE, EVAL_FILE):
            digest.update(name.encode() + b"\0" + (folder / name).read_bytes())
        assert run.dataset_hash == digest.hexdigest()
        carved.append(validation)
    # The same rows each time: the choice hangs on the ids alone.
    assert carved[0] == carved[1] == validation_ids(((n, "") for n in range(100, 0, -1)), 12)


def test_each_label_gives_its_share_of_validation_rows_whatever_the_order() -> None:
    labels = ["billing"] * 40 + ["shipping"] * 40 + ["login"] * 16 + ["refund"] * 4
    rows = list(enumerate(labels, start=1))
    chosen = validation_ids(rows, 12)
    assert validation_ids(reversed(rows), 12) == validation_ids(rows[1::2] + rows[::2], 12)
    assert validation_ids(reversed(rows), 12) == chosen
    counts = Counter(labels[n - 1] for n in chosen)
    assert counts == {"billing": 5, "shipping": 5, "login": 2}
    # One stratum is the plain hash order, so a task without labels keeps the rows it had.
    plain = validation_ids(((n, "") for n, _ in rows), 12)
    assert Counter(labels[n - 1] for n in plain) != counts


def test_a_label_task_validates_on_every_label_it_can_afford(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "p")
    labels = ["billing"] * 30 + ["shipping"] * 30 + ["login"] * 8 + ["refund"] * 12
    add_examples(
        db,
        project.id,
        [prompt_response(f"message {n}", label) for n, label in enumerate(labels, start=1)],
        source="typed",
        split_mode="train",
    )
    train, evaluation = approved_rows(db, project)
    run = prepare_run(db, project, plan_run(len(train), len(evaluation), None))
    assert run.run_dir is not None
    validation = read_snapshot_rows(Path(run.run_dir) / VALIDATION_FILE)
    answers = Counter(row["messages"][-1]["content"] for row in validation)
    assert answers == {"billing": 4, "shipping": 4, "login": 1, "refund": 1}
    assert run.dataset_size == 70


def test_a_small_train_split_keeps_every_row_and_validates_on_eval() -> None:
    assert validation_count(59) == 0 and validation_count(60) == 8
    assert validation_count(67) == 8 and validation_count(100) == 12
    plan = plan_run(59, 20, None)
    assert plan.reasons["eval_every"].startswith("eval loss on the 20 eval rows")
    assert plan.config.epochs == 3 and plan.config.max_steps == 3 * 8
