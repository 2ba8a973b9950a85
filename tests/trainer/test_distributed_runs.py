"""Real two-process DDP runs of the tiny model on CPU (gloo), started under torchrun.

Both ranks train, rank 0 alone writes rows and checkpoints, the adapter matches one process
with the same global batch, a stop and a resume work, and a dead rank fails the run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import sqlite_utils
from safetensors.torch import load_file

from store.database import open_database
from store.examples import add_examples
from store.paths import ensure_private_dir, home_dir
from store.projects import Project, create_project
from store.runs import get_run, metrics
from tests.conftest import TinyRun, tiny_task_rows
from tests.reliability.harness import tiny_project, wait_for
from trainer.control.distributed import Launch
from trainer.control.jobs import plan_for_project, resume_run, start_run, stop_run
from trainer.training.checkpoints import complete_checkpoints
from trainer.training.hardware import MEASURED_FILENAME

ADAPTER_FILE = "adapter_model.safetensors"
TWO = Launch(processes=2)


def colours_project(db: sqlite_utils.Database, model_dir: Path) -> Project:
    """The tiny task with the rows ``completed_tiny_run`` trained on, in the same order."""
    project = create_project(db, "colours", base_model=str(model_dir))
    add_examples(db, project.id, tiny_task_rows(16), source="imported", split_mode="train")
    add_examples(db, project.id, tiny_task_rows(20)[16:], source="imported", split_mode="eval")
    return project


def test_two_ranks_train_the_adapter_one_process_trains(
    tmp_path: Path, tiny_model_dir: Path, completed_tiny_run: TinyRun
) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = colours_project(db, tiny_model_dir)
    # The settings of completed_tiny_run: 4 rows per step in all, 2 on each rank.
    plan = plan_for_project(db, project, {"max_steps": 6, "batch_size": 4})
    # The precision that run measured, kept on this machine as it would be: several ranks
    # go by it instead of measuring side by side. A CPU without bf16 measures nothing.
    measured = completed_tiny_run.home / MEASURED_FILENAME
    if measured.exists():
        ensure_private_dir(home_dir())
        shutil.copy(measured, home_dir() / MEASURED_FILENAME)
    run = start_run(db, db_path, project, plan, TWO)

    done = wait_for(db, run.id, lambda r: r.status not in ("queued", "running"), "the end")
    log = Path(done.log_path or "").read_text()
    assert done.status == "completed", log[-3000:]
    precision = "kept in hardware.json" if measured.exists() else "the CPU has no bf16"
    assert precision in log
    assert "[rank 0] Run" in log and "[rank 1] Run" in log
    assert done.config["processes"] == 2 and done.config["strategy"] == "ddp"

    # One progress row per step and eval: rank 1 wrote none.
    steps = [metric.step for _, metric in metrics(db, run.id) if metric.loss is not None]
    assert steps == list(range(1, 7))
    assert all(metric.tokens_per_second for _, metric in metrics(db, run.id)[1:] if metric.loss)
    checkpoint = complete_checkpoints(Path(done.run_dir or "") / "checkpoints")[-1]
    assert checkpoint.name == "checkpoint-6"
    # Each rank saved its own RNG state into the one checkpoint rank 0 marked.
    assert {path.name for path in checkpoint.glob("rng_state_*.pth")} == {
        "rng_state_0.pth",
        "rng_state_1.pth",
    }
    assert log.count("Checkpoint saved at step 6") == 1

    # The same rows in each step: equal losses until Adam's normalised steps amplify the
    # rounding of a sum over two ranks instead of one (measured: 1e-3 relative by step 6).
    single_db = open_database(completed_tiny_run.db_path)
    single_run = get_run(single_db, completed_tiny_run.run_id)
    losses = [m.loss for _, m in metrics(db, run.id) if m.loss is not None]
    single_losses = [m.loss for _, m in metrics(single_db, single_run.id) if m.loss is not None]
    assert losses[:2] == pytest.approx(single_losses[:2], rel=1e-6)
    assert losses == pytest.approx(single_losses, rel=1e-2)
    two = load_file(Path(done.adapter_path or "") / ADAPTER_FILE)
    one = load_file(Path(single_run.adapter_path or "") / ADAPTER_FILE)
    assert two.keys() == one.keys()
    for name, weight in one.items():
        # Measured: a few % of a tensor's norm at most; other rows in a step move it ~100%.
        assert ((two[name] - weight).norm() / weight.norm()).item() < 0.1, name


def test_two_ranks_stop_together_resume_and_a_dead_rank_fails_the_run(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    db_path = tmp_path / "t.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    plan = plan_for_project(db, project, {"max_steps": 400, "save_every": 5, "batch_size": 4})
    run = start_run(db, db_path, project, plan, TWO)

    # A stop reaches both ranks through the launcher; they stop at one step, with a checkpoint.
    wait_for(db, run.id, lambda r: r.current_step >= 3, "a few steps")
    stop_run(db, run.id)
    stopped = wait_for(db, run.id, lambda r: r.status != "running", "the stop")
    log_path = Path(stopped.log_path or "")
    assert stopped.status == "stopped", log_path.read_text()[-3000:]
    assert stopped.checkpoint_step == stopped.current_step
    checkpoint = complete_checkpoints(Path(stopped.run_dir or "") / "checkpoints")[-1]
    assert checkpoint.name == f"checkpoint-{stopped.checkpoint_step}"
    assert len(list(checkpoint.glob("rng_state_*.pth"))) == 2

    # The resume starts both ranks again from that step.
    before_resume = log_path.stat().st_size
    resume_run(db, db_path, run.id)
    resumed = wait_for(
        db, run.id, lambda r: r.current_step > (stopped.current_step or 0), "resumed steps"
    )
    assert resumed.status == "running"
    first_resumed = min(
        metric.step for _, metric in metrics(db, run.id) if metric.recorded_at > stopped.updated_at
    )
    assert first_resumed == (stopped.checkpoint_step or 0) + 1

    # kill -9 of rank 1: torchrun stops rank 0 and the run fails, naming the rank.
    os.kill(rank_pid_after(log_path, stopped_at=before_resume), signal.SIGKILL)
    failed = wait_for(db, run.id, lambda r: r.status != "running", "the failure")
    assert failed.status == "failed", log_path.read_text()[-3000:]
    assert failed.error is not None
    assert failed.error.startswith("rank 1 was killed by SIGKILL"), failed.error
    assert failed.current_step < 400


def rank_pid_after(log: Path, *, stopped_at: int) -> int:
    """Rank 1's pid in the part of the log written after ``stopped_at`` bytes (the resume)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_bytes()[stopped_at:].decode()
        found = re.search(r"\[rank 1\] Run \d+ started \(pid (\d+)\)", text)
        if found:
            return int(found.group(1))
        time.sleep(0.2)
    pytest.fail(f"rank 1 never started: {log.read_text()[-2000:]}")
