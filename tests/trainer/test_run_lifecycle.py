"""A run's life as a detached process: SIGTERM stops it with a checkpoint, kill -9 leaves it
interrupted, and resume continues the step count from the last complete checkpoint; once it is
completed, SIGTERM ends the evaluation it runs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from store.errors import InputError
from store.evals import latest_evaluation
from store.examples import add_examples
from store.runs import get_run, metrics
from tests.conftest import tiny_task_rows
from tests.reliability.harness import (
    RUN_TIMEOUT_SECONDS,
    launched,
    run_log,
    tiny_project,
    wait_for,
    wait_until_paused,
)
from trainer.control.jobs import plan_for_project, prepare_run, resume_run, start_run, stop_run
from trainer.training.callbacks import EvaluationStopped, StopRequest
from trainer.training.checkpoints import complete_checkpoints
from trainer.training.run import evaluate_unless_stopped
from tui.cli.main import cli


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


def test_stop_ends_the_evaluation_after_training_and_keeps_the_adapter(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    db_path = tmp_path / "t.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    add_examples(db, project.id, tiny_task_rows(20)[16:], source="imported", split_mode="eval")
    run = prepare_run(db, project, plan_for_project(db, project, {"max_steps": 4}))

    # Paused after the base model answered: the run is completed and evaluating itself.
    with launched(db, db_path, run, fault="pause-in-evaluation:1") as process:
        wait_until_paused(process)
        assert get_run(db, run.id).status == "completed"
        asked = CliRunner().invoke(cli, ["--db", str(db_path), "runs", "stop", str(run.id)])
        assert asked.exit_code == 0, asked.output
        assert asked.output == (
            f"Asked run {run.id} to stop evaluating itself; its adapter is kept. "
            f"Evaluate it later: tunesmith eval colours --run {run.id}\n"
        )
        os.kill(process.pid, signal.SIGCONT)
        assert process.wait(timeout=RUN_TIMEOUT_SECONDS) == 0, run_log(run)

    ended = get_run(db, run.id)
    assert ended.status == "completed"
    assert ended.adapter_path is not None
    assert (Path(ended.adapter_path) / "adapter_model.safetensors").is_file()
    assert latest_evaluation(db, run.id) is None
    log = run_log(ended)
    assert (
        "SIGTERM received: the evaluation stopped; the adapter is kept; evaluate it later: "
        f"tunesmith eval colours --run {run.id}"
    ) in log
    assert "Evaluation: base" not in log
    with pytest.raises(InputError, match=f"run {run.id} is completed, not running"):
        stop_run(db, run.id)


def test_a_stop_asked_while_the_adapter_was_saved_skips_the_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stop = StopRequest()
    stop.requested = True
    # No database at this path: nothing is read when the evaluation is skipped.
    evaluate_unless_stopped(tmp_path / "absent.db", 3, "colours", stop)
    assert capsys.readouterr().out == (
        "Not evaluating, as asked: the adapter is kept; evaluate it later: "
        "tunesmith eval colours --run 3\n"
    )


def test_sigterm_ends_the_evaluation_only_within_it() -> None:
    handler = signal.getsignal(signal.SIGTERM)
    try:
        stop = StopRequest()
        with pytest.raises(EvaluationStopped), stop.ending_evaluation():
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()  # never reached: the handler raises first
        # A SIGTERM before the block ends the evaluation as it begins.
        with pytest.raises(EvaluationStopped), stop.ending_evaluation():
            pass
        # After it, SIGTERM is only noted: a completed run must not fail at its very end.
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested
    finally:
        signal.signal(signal.SIGTERM, handler)
