"""Training runs under real faults: kill -9 (after a checkpoint and halfway through one), SIGTERM,
a full disk, a NaN loss, and the app writing the same database all the while."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from store.database import open_database
from store.examples import add_examples, list_examples, prompt_response, update_example
from store.runs import get_run, metrics
from tests.reliability.harness import (
    RUN_TIMEOUT_SECONDS,
    fill_disk,
    integrity_ok,
    launched,
    run_log,
    small_disk,
    tiny_project,
    wait_for,
    wait_until_paused,
)
from tests.reliability.scorecard import Scorecard
from trainer.control.jobs import (
    plan_for_project,
    prepare_run,
    refresh_runs,
    resume_run,
    start_run,
    stop_run,
)
from trainer.training.checkpoints import (
    CHECKPOINT_MARKER,
    complete_checkpoints,
    resumable_checkpoint,
)

SECRET = "sk-reliability-0123456789abcdef"
"""An API key in the run's environment that must never reach its log, files or the database."""


def loss_steps(db_path: Path, run_id: int) -> list[int]:
    """The steps of the run's training-loss progress rows, in the order they were stored."""
    return [m.step for _, m in metrics(open_database(db_path), run_id) if m.loss is not None]


@pytest.mark.reliability_slow
def test_kill_during_and_after_a_checkpoint_and_sigterm_then_resume_to_the_end(
    tmp_path: Path, tiny_model_dir: Path, scorecard: Scorecard
) -> None:
    db_path = tmp_path / "t.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    plan = plan_for_project(db, project, {"max_steps": 40, "save_every": 5, "batch_size": 4})
    run = prepare_run(db, project, plan)
    root = Path(run.run_dir or "") / "checkpoints"

    with scorecard.fault("kill -9 while a checkpoint's optimizer.pt is half written"):
        with launched(db, db_path, run, fault="kill-mid-save:10") as process:
            assert process.wait(timeout=RUN_TIMEOUT_SECONDS) == -signal.SIGKILL, run_log(run)
        killed = wait_for(db, run.id, lambda r: r.status == "interrupted", "interrupted")
        assert killed.checkpoint_step == 5
        # The half-written checkpoint is there, unmarked, in staging: debris, never a candidate.
        half = root / ".staging" / "checkpoint-10"
        assert (half / "optimizer.pt").is_file() and not (half / CHECKPOINT_MARKER).exists()
        assert [path.name for path in complete_checkpoints(root)] == ["checkpoint-5"]
        assert resumable_checkpoint(root, run.id) == root / "checkpoint-5"
        assert integrity_ok(db_path)

    with scorecard.fault("kill -9 after a checkpoint"):
        resume_run(db, db_path, run.id)
        running = wait_for(
            db,
            run.id,
            lambda r: r.status == "running" and (r.checkpoint_step or 0) >= 15,
            "a checkpoint after resuming",
        )
        assert f"Resuming from {root / 'checkpoint-5'}" in run_log(running)
        assert running.pid is not None
        os.kill(running.pid, signal.SIGKILL)
        interrupted = wait_for(db, run.id, lambda r: r.status == "interrupted", "interrupted")
        last = interrupted.checkpoint_step or 0
        assert last >= 15
        assert resumable_checkpoint(root, run.id) == root / f"checkpoint-{last}"
        assert integrity_ok(db_path)

    with scorecard.fault("SIGTERM while training"):
        resume_run(db, db_path, run.id)
        wait_for(
            db,
            run.id,
            lambda r: r.status == "running" and r.current_step >= last + 2,
            "steps past the checkpoint",
        )
        stop_run(db, run.id)
        stopped = wait_for(db, run.id, lambda r: r.status == "stopped", "the stop")
        assert stopped.checkpoint_step == stopped.current_step < 40
        assert resumable_checkpoint(root, run.id) == root / f"checkpoint-{stopped.current_step}"

    resume_run(db, db_path, run.id)
    completed = wait_for(db, run.id, lambda r: r.status == "completed", "completion")
    assert completed.current_step == completed.max_steps == 40
    steps = loss_steps(db_path, run.id)
    scorecard.rows("progress rows across two kills and a stop", expected=40, kept=len(set(steps)))
    assert set(steps) == set(range(1, 41))
    assert not (root / ".staging").exists()
    assert len(complete_checkpoints(root)) <= plan.config.keep_checkpoints


@pytest.mark.reliability_slow
def test_kill_before_a_marked_checkpoint_is_renamed_leaves_the_previous_one(
    tmp_path: Path, tiny_model_dir: Path, scorecard: Scorecard
) -> None:
    db_path = tmp_path / "t.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    plan = plan_for_project(db, project, {"max_steps": 20, "save_every": 5, "batch_size": 4})
    run = prepare_run(db, project, plan)
    root = Path(run.run_dir or "") / "checkpoints"

    with scorecard.fault("kill -9 between marking a checkpoint and renaming it into place"):
        with launched(db, db_path, run, fault="kill-before-rename:10") as process:
            assert process.wait(timeout=RUN_TIMEOUT_SECONDS) == -signal.SIGKILL, run_log(run)
        killed = wait_for(db, run.id, lambda r: r.status == "interrupted", "interrupted")
        assert killed.checkpoint_step == 5
        assert (root / ".staging" / "checkpoint-10" / CHECKPOINT_MARKER).is_file()
        assert resumable_checkpoint(root, run.id) == root / "checkpoint-5"
        assert integrity_ok(db_path)


def test_nan_loss_fails_the_run_at_that_step(
    tmp_path: Path, tiny_model_dir: Path, scorecard: Scorecard
) -> None:
    db_path = tmp_path / "t.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    plan = plan_for_project(db, project, {"max_steps": 12, "save_every": 5, "batch_size": 4})
    run = prepare_run(db, project, plan)
    root = Path(run.run_dir or "") / "checkpoints"

    with scorecard.fault("NaN loss at step 7"):
        with launched(db, db_path, run, fault="nan-loss:7") as process:
            assert process.wait(timeout=RUN_TIMEOUT_SECONDS) == 1, run_log(run)
        failed = get_run(db, run.id)
        assert failed.status == "failed"
        assert (failed.error or "").startswith("the loss became nan at step 7;"), failed.error
        assert loss_steps(db_path, run.id) == [1, 2, 3, 4, 5, 6]
        assert resumable_checkpoint(root, run.id) == root / "checkpoint-5"
        assert integrity_ok(db_path)


def test_disk_full_while_saving_a_checkpoint(
    tmp_path: Path, tiny_model_dir: Path, scorecard: Scorecard, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = tmp_path / "disk"
    with small_disk(disk, 32 * 1024**2) as mounted:
        # The runs live on the small disk; the database stays where it was.
        monkeypatch.setenv("TUNESMITH_HOME", str(disk / "home"))
        db_path = tmp_path / "t.db"
        db, project = tiny_project(db_path, tiny_model_dir)
        plan = plan_for_project(db, project, {"max_steps": 25, "save_every": 10, "batch_size": 4})
        run = prepare_run(db, project, plan)
        root = Path(run.run_dir or "") / "checkpoints"
        how = "a full tmpfs" if mounted else "an injected ENOSPC"

        with scorecard.fault(f"disk full while saving a checkpoint ({how})"):
            fault = "pause-after-checkpoint:10" if mounted else "enospc-at-save:20"
            with launched(db, db_path, run, fault=fault) as process:
                if mounted:
                    try:
                        wait_until_paused(process)
                        filler = fill_disk(disk, leave_bytes=512 * 1024)
                    finally:
                        os.kill(process.pid, signal.SIGCONT)
                assert process.wait(timeout=RUN_TIMEOUT_SECONDS) == 1, run_log(run)
            failed = get_run(db, run.id)
            assert failed.status == "failed"
            assert failed.error is not None and "\n" not in failed.error
            assert failed.error.startswith(
                "the disk is full: the checkpoint at step 20 could not be saved"
            ), failed.error
            assert "the last complete checkpoint (checkpoint-10) is intact" in failed.error
            assert f"tunesmith train --resume {run.id}" in failed.error
            assert failed.checkpoint_step == 10
            assert resumable_checkpoint(root, run.id) == root / "checkpoint-10"
            assert not (root / ".staging").exists()
            assert integrity_ok(db_path)

            # With space again, the run resumes from the checkpoint the full disk left alone.
            if mounted:
                filler.unlink()
            resume_run(db, db_path, run.id)
            completed = wait_for(db, run.id, lambda r: r.status == "completed", "completion")
            assert completed.current_step == 25
            assert f"Resuming from {root / 'checkpoint-10'}" in run_log(completed)


def test_the_app_and_a_run_write_the_database_at_once(
    tmp_path: Path, tiny_model_dir: Path, scorecard: Scorecard, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("OPENAI_API_KEY", "TUNESMITH_AGENT_API_KEY", "TUNESMITH_API_KEY"):
        monkeypatch.setenv(variable, SECRET)
    db_path = tmp_path / "t.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    plan = plan_for_project(db, project, {"max_steps": 30, "save_every": 10, "batch_size": 4})

    with scorecard.fault("the app writes the database for the whole of a run"):
        run = start_run(db, db_path, project, plan)
        errors: list[str] = []
        added = edits = 0
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        current = get_run(db, run.id)
        while current.status not in ("completed", "failed", "interrupted", "stopped"):
            assert time.monotonic() < deadline, run_log(current)
            try:
                rows = [
                    prompt_response(f"Concurrent prompt {added + i}.", f"answer {added + i}")
                    for i in range(5)
                ]
                added += add_examples(db, project.id, rows, source="typed").added
                first = list_examples(db, project.id)[edits % 16]
                update_example(db, first.id, tags=(f"edit-{edits}",))
                edits += 1
                metrics(db, run.id)
                refresh_runs(db)
                current = get_run(db, run.id)
            except sqlite3.OperationalError as error:
                errors.append(str(error))
        assert errors == []
        assert current.status == "completed", run_log(current)
        steps = loss_steps(db_path, run.id)
        stored = len(list_examples(db, project.id))
        scorecard.rows("progress rows written beside the app", expected=30, kept=len(steps))
        scorecard.rows("examples the app added beside a run", expected=16 + added, kept=stored)
        assert steps == list(range(1, 31))
        assert stored == 16 + added and added > 0 and edits > 0
        assert integrity_ok(db_path)

    # The keys in the run's environment reached none of its files nor the database.
    run_files = [path for path in Path(run.run_dir or "").rglob("*") if path.is_file()]
    db_files = [path for path in tmp_path.glob("t.db*") if path.is_file()]
    for path in [*run_files, *db_files]:
        clean = SECRET.encode() not in path.read_bytes()
        scorecard.payload(f"API key kept out of {path.name}", neutralised=clean)
        assert clean, path
