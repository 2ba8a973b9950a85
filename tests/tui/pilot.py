"""Helpers of the app's Pilot tests: wait for workers, open a project, poll with a deadline."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Static
from textual.worker import WorkerState

from store.database import open_database
from store.evals import EvalItem, Scores, save_evaluation
from store.examples import NewExample, add_examples, prompt_response
from store.paths import ensure_private_dir
from store.projects import Project, create_project
from store.runs import (
    Run,
    RunMetric,
    create_run,
    finish_run,
    get_run,
    mark_started,
    record_step,
    set_checkpoint,
    set_max_steps,
    set_outcome,
)
from store.vocabulary import RunStatus
from trainer.control.comparison import paired_tests, score_intervals
from trainer.control.scoring import mean_scores
from tui.dialogs.project_picker import ProjectPickerScreen
from tui.widgets.dataset.examples_table import ExamplesTable
from tui.widgets.key_table import KeyTable

SIZE = (80, 24)
"""A standard terminal, the size most journeys run at."""

CLICK_TEXT = "[@click=app.quit]x[/]"
"""Markup that would quit the app if it were parsed."""
ANSI_TEXT = "\x1b[31mred\x1b[0m and a bell\x07"
"""Control characters that would colour the terminal and ring it if they got through."""
CLOSING_TAG_TEXT = "a closing tag [/] alone"
"""A closing tag with nothing open, which crashes markup parsing."""


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until no worker is pending or running and what they posted has been handled."""
    for _ in range(20):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(
            worker.state in (WorkerState.PENDING, WorkerState.RUNNING)
            for worker in pilot.app.workers
        ):
            return
    raise AssertionError("workers kept starting")


async def choose(pilot: Pilot[Any], name: str = "reviews") -> None:
    """Open project ``name`` from the picker shown at start."""
    await settle(pilot)
    picker = pilot.app.screen
    assert isinstance(picker, ProjectPickerScreen)
    table = picker.query_one("#picker-projects", KeyTable)
    table.move_cursor(row=table.get_row_index(name))
    await pilot.press("enter")
    await settle(pilot)


async def wait_until(
    pilot: Pilot[Any], condition: Callable[[], bool], what: str, timeout: float = 60.0
) -> None:
    """Let the app run until ``condition`` holds, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


def shown(screen: Any, selector: str) -> str:
    """The text a Static shows, as a person reads it."""
    return str(screen.query_one(selector, Static).render())


def copy_database(source: Path, target: Path) -> Path:
    """A copy of a live SQLite database (its WAL included), to change without touching it."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    target.chmod(0o600)
    return target


def demo_project(db_path: Path, name: str = "reviews") -> Project:
    """A project with four approved train rows, one eval row and a pending hostile row."""
    db = open_database(db_path)
    project = create_project(db, name)
    add_examples(
        db,
        project.id,
        [
            NewExample(
                messages=prompt_response("Great phone, the battery lasts.", "positive").messages,
                tags=("battery",),
            ),
            prompt_response("Screen cracked in a week.", "negative"),
            prompt_response("Arrived on time.", "neutral"),
            prompt_response("Camera is superb.", "positive"),
        ],
        source="imported",
        split_mode="train",
    )
    add_examples(
        db, project.id, [prompt_response("Meh.", "neutral")], source="typed", split_mode="eval"
    )
    add_examples(
        db,
        project.id,
        [prompt_response(CLICK_TEXT, ANSI_TEXT)],
        source="drafted",
        split_mode="train",
        status="pending",
    )
    db.close()
    return project


VALIDATED_OUTCOME = (
    "validation exact match 0.75, no better for 3 checks; kept step 3 (eval loss 0.8333)"
)


def finished_run(
    db_path: Path,
    project: Project,
    *,
    status: RunStatus = "completed",
    error: str | None = None,
    validated: bool = False,
) -> Run:
    """A run recorded as trained (six logged steps, eval loss twice) without any training;
    ``validated``: its checks also scored validation rows (0.75 twice) and step 3 was kept."""
    db = open_database(db_path)
    run = create_run(
        db,
        project.id,
        config={"max_steps": 6, **({"validation_metric": "exact_match"} if validated else {})},
        dataset_hash="0" * 64,
        dataset_size=4,
        runs_root=ensure_private_dir(db_path.parent / "runs"),
    )
    assert run.run_dir is not None and run.log_path is not None
    ensure_private_dir(Path(run.run_dir))
    Path(run.log_path).write_text(
        "Config: {...}\nstep 5 [@click=app.quit]done[/]\nCheckpoint saved at step 6\n"
    )
    mark_started(db, run.id, pid=1)
    set_max_steps(db, run.id, 6)
    for step in range(1, 7):
        record_step(
            db,
            RunMetric(
                run.id,
                step,
                step / 3,
                2.0 / step,
                None,
                1e-3,
                1.0,
                100 * step,
                250.0,
                float(6 - step),
                "2025-01-01T10:00:00+00:00",
            ),
        )
        if step % 3 == 0:
            record_step(
                db,
                RunMetric(
                    run.id,
                    step,
                    step / 3,
                    None,
                    2.5 / step,
                    None,
                    None,
                    None,
                    None,
                    None,
                    "2025-01-01T10:00:00+00:00",
                    validation_score=0.75 if validated else None,
                ),
            )
            set_checkpoint(db, run.id, step)
    adapter = str(Path(run.run_dir) / "adapter") if status == "completed" else None
    if validated:
        set_outcome(db, run.id, best_step=3, stop_reason=VALIDATED_OUTCOME)
    finish_run(db, run.id, status, error=error, adapter_path=adapter)
    db.close()
    return get_run(open_database(db_path), run.id)


@contextmanager
def evaluating_process(db_path: Path, run: Run) -> Iterator[subprocess.Popen[bytes]]:
    """``run``'s process still evaluating after saving the adapter: a live process whose
    command line names trainer.training.run, as the liveness check reads it; killed on exit."""
    evaluator = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "-m", "trainer.training.run"]
    )
    try:
        db = open_database(db_path)
        db.execute("UPDATE runs SET pid = ? WHERE id = ?", [evaluator.pid, run.id])
        db.close()
        yield evaluator
    finally:
        evaluator.kill()
        evaluator.wait()


def evaluate(db_path: Path, run: Run) -> None:
    """Store a three-system evaluation of ``run``: three items, the tuned answer ahead of base
    on two of them and of few-shot on one, with intervals and tests computed from them."""
    wrong: Scores
    right: Scores
    half: Scores
    wrong, right, half = (
        {"exact_match": 0.0, "token_f1": 0.0},
        {"exact_match": 1.0, "token_f1": 1.0},
        {"exact_match": 0.0, "token_f1": 0.5},
    )
    items = [
        EvalItem(1, "Meh.", "neutral", "positive", "neutral", wrong, right, "neutral", right),
        EvalItem(
            2, "So good!", "positive", "positive", "negative", right, wrong, "positive", right
        ),
        EvalItem(
            3, CLICK_TEXT, "[/] negative", ANSI_TEXT, "[/] negative", half, right, "negative", half
        ),
    ]
    per_item = {
        "base": [item.base_scores for item in items],
        "few_shot": [item.few_shot_scores or {} for item in items],
        "tuned": [item.tuned_scores for item in items],
    }
    db = open_database(db_path)
    save_evaluation(
        db,
        run.id,
        items,
        mean_scores(per_item["base"]),
        mean_scores(per_item["tuned"]),
        few_shot=mean_scores(per_item["few_shot"]),
        shots=2,
        intervals=score_intervals(per_item),
        mcnemar=paired_tests(per_item),
    )
    db.close()


def row_texts(table: ExamplesTable) -> list[list[str]]:
    """The plain text of every cell of the examples table, row by row."""
    rows = []
    for index in range(table.row_count):
        cells = table.get_row_at(index)
        assert all(isinstance(cell, Text) for cell in cells)
        rows.append([cell.plain for cell in cells])
    return rows
