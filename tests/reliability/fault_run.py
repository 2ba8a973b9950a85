"""A training run with one real fault.

``python -m tests.reliability.fault_run FAULT trainer.training.run --db PATH --run-id N [--resume]``
patches one library call inside the run, then hands over to ``trainer.training.run.main``; the
product code knows nothing of it. FAULT is ``KIND:STEP``:

- ``kill-mid-save``: SIGKILL while ``optimizer.pt`` of the checkpoint at STEP is half written;
- ``kill-before-rename``: SIGKILL once that checkpoint is complete and marked in staging;
- ``pause-after-checkpoint``: SIGSTOP once that checkpoint is recorded (the test sends SIGCONT);
- ``enospc-at-save``: that checkpoint's ``optimizer.pt`` fails half written with ENOSPC;
- ``nan-loss``: the training loss of step STEP is NaN;
- ``pause-in-evaluation``: SIGSTOP once the evaluation after training has answered the eval
  rows with STEP systems (base, then few-shot, then tuned).
"""

from __future__ import annotations

import errno
import io
import os
import signal
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import torch

import store.runs
import trainer.eval_generation
import trainer.training.checkpoints
import trainer.training.run
from trainer.training.checkpoints import AtomicCheckpointTrainer

FAULTS = (
    "kill-mid-save",
    "kill-before-rename",
    "pause-after-checkpoint",
    "enospc-at-save",
    "nan-loss",
    "pause-in-evaluation",
)


def _half_written_optimizer(step: int, then: str) -> None:
    """Make the optimizer save of checkpoint ``step`` write half its bytes, then fault."""
    original_save = torch.save

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        target = Path(str(f)) if isinstance(f, str | os.PathLike) else None
        if (
            target is None
            or target.name != "optimizer.pt"
            or target.parent.name != f"checkpoint-{step}"
            or target.parent.parent.name != ".staging"
        ):
            original_save(obj, f, *args, **kwargs)
            return
        buffer = io.BytesIO()
        original_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        with target.open("wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            os.fsync(handle.fileno())
        if then == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    mock.patch.object(torch, "save", save).start()


def _kill_after_marker(step: int) -> None:
    """SIGKILL right after the checkpoint at ``step`` is marked, before it is renamed."""
    original_marker = trainer.training.checkpoints.write_checkpoint_marker

    def write_marker(folder: Path, *, run_id: int, step: int) -> None:
        original_marker(folder, run_id=run_id, step=step)
        if step == target_step:
            os.kill(os.getpid(), signal.SIGKILL)

    target_step = step
    mock.patch.object(trainer.training.checkpoints, "write_checkpoint_marker", write_marker).start()


def _pause_after_checkpoint(step: int) -> None:
    """SIGSTOP right after the checkpoint at ``step`` is recorded in the database."""

    def set_checkpoint(db: Any, run_id: int, saved_step: int) -> None:
        store.runs.set_checkpoint(db, run_id, saved_step)
        if saved_step == step:
            os.kill(os.getpid(), signal.SIGSTOP)

    mock.patch.object(trainer.training.checkpoints, "set_checkpoint", set_checkpoint).start()


def _pause_in_evaluation(systems: int) -> None:
    """SIGSTOP once the evaluation has answered every eval row with ``systems`` systems."""
    original_generate: Any = trainer.eval_generation.generate_answers
    answered = 0

    def generate_answers(*args: Any, **kwargs: Any) -> Any:
        nonlocal answered
        answers = original_generate(*args, **kwargs)
        answered += 1
        if answered == systems:
            os.kill(os.getpid(), signal.SIGSTOP)
        return answers

    # Where the evaluation looks the name up.
    mock.patch("trainer.evaluation.generate_answers", generate_answers).start()


def _nan_loss(step: int) -> None:
    """Make the training loss of step ``step`` NaN."""
    original_compute_loss: Any = AtomicCheckpointTrainer.compute_loss

    def compute_loss(
        self: AtomicCheckpointTrainer,
        model: Any,
        inputs: Any,
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        result = original_compute_loss(
            self,
            model,
            inputs,
            return_outputs=return_outputs,
            num_items_in_batch=num_items_in_batch,
        )
        if not model.training or self.state.global_step + 1 != step:
            return result
        if return_outputs:
            loss, outputs = result
            return loss * float("nan"), outputs
        return result * float("nan")

    mock.patch.object(AtomicCheckpointTrainer, "compute_loss", compute_loss).start()


def main(argv: list[str]) -> int:
    """Install the fault named by ``argv[0]``, then run ``trainer.training.run`` with argv[2:]."""
    fault, wrapped, *run_arguments = argv
    kind, _, step_text = fault.partition(":")
    if kind not in FAULTS or not step_text.isdigit() or wrapped != "trainer.training.run":
        raise SystemExit(
            f"usage: fault_run {{{','.join(FAULTS)}}}:STEP trainer.training.run ARGS..."
        )
    step = int(step_text)
    if kind == "kill-mid-save":
        _half_written_optimizer(step, then="kill")
    elif kind == "enospc-at-save":
        _half_written_optimizer(step, then="enospc")
    elif kind == "kill-before-rename":
        _kill_after_marker(step)
    elif kind == "pause-after-checkpoint":
        _pause_after_checkpoint(step)
    elif kind == "pause-in-evaluation":
        _pause_in_evaluation(step)
    else:
        _nan_loss(step)
    print(f"Fault installed: {fault}", flush=True)
    return trainer.training.run.main(run_arguments)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
