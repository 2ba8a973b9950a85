"""A run's snapshot: the approved rows of each split, counted in SQL and written as they are
read, with the digest of both files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from store.database import open_database
from store.example_edits import ExampleUpdate, update_examples
from store.examples import add_examples, prompt_response
from store.projects import create_project
from trainer.control.config import plan_run
from trainer.control.jobs import approved_rows, prepare_run
from trainer.control.snapshot import EVAL_FILE, TRAIN_FILE, read_snapshot_rows


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
