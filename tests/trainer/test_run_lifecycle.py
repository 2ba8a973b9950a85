"""A run's life as a detached process: SIGTERM stops it with a checkpoint, kill -9 leaves it
interrupted, and resume continues the step count from the last complete checkpoint."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from store.runs import metrics
from tests.reliability.harness import tiny_project, wait_for
from trainer.control.jobs import plan_for_project, resume_run, start_run, stop_run
from trainer.training.checkpoints import complete_checkpoints


def test_stop_kill_and_resume_continue_the_step_count(tmp_path: Path, tiny_model_dir: Path) -> None:
    db_path = tmp_path / "t.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    plan = plan_for_project(db, project, {"max_steps": 60, "save_every": 5, "batch_size": 4})
    run = start_run(db, db_path, project, plan)

    # SIGTERM: the run finishes its step, saves a checkpoint there and ends stopped.
    wait_for(db, run.id, lambda r: r.current_step >= 7, "a few steps")
    stop_run(db, run.id)
    stopped = wait_for(db, run.id, lambda r: r.status == "stopped", "the stop")
    assert stopped.checkpoint_step == stopped.current_step
    assert stopped.current_step < 60
    run_dir = Path(stopped.run_dir or "")
    assert complete_checkpoints(run_dir / "checkpoints")[-1].name == (
        f"checkpoint-{stopped.checkpoint_step}"
    )

    # Resume, then kill -9 after a further checkpoint: the run shows as interrupted.
    resume_run(db, db_path, run.id)
    after_stop = stopped.checkpoint_step or 0
    running = wait_for(
        db,
        run.id,
        lambda r: r.status == "running" and (r.checkpoint_step or 0) >= after_stop + 5,
        "a checkpoint after resuming",
    )
    assert running.pid is not None
    os.kill(running.pid, signal.SIGKILL)
    interrupted = wait_for(db, run.id, lambda r: r.status == "interrupted", "interrupted")
    assert "killed" in (interrupted.error or "")
    # The kill can land after a checkpoint is complete on disk but before the database says
    # so; resuming takes the newest complete one on disk.
    newest = complete_checkpoints(run_dir / "checkpoints")[-1]
    last_checkpoint = int(newest.name.removeprefix("checkpoint-"))
    assert last_checkpoint >= (interrupted.checkpoint_step or 0) >= after_stop + 5
    rows_before_resume = max(row_id for row_id, _ in metrics(db, run.id))

    # Resume again: it ends at the same max step, continuing from the last checkpoint.
    resumed = resume_run(db, db_path, run.id)
    # Until it logs a step, its step is that of its checkpoint, not what the killed one reached.
    assert resumed.current_step == (interrupted.checkpoint_step or 0) <= interrupted.current_step
    completed = wait_for(db, run.id, lambda r: r.status == "completed", "completion")
    assert completed.current_step == completed.max_steps == 60
    resumed_steps = [
        m.step for _, m in metrics(db, run.id, after_id=rows_before_resume) if m.loss is not None
    ]
    # Steps the killed process logged past its last checkpoint are trained again, once.
    assert resumed_steps == list(range(last_checkpoint + 1, 61))
    all_steps = [m.step for _, m in metrics(db, run.id) if m.loss is not None]
    assert all_steps.count(1) == 1, "resuming never starts again from step 1"
    assert len(complete_checkpoints(run_dir / "checkpoints")) <= plan.config.keep_checkpoints
    assert not (run_dir / "checkpoints" / ".staging").exists()
