"""The run's hooks into the Trainer: the stop request, and the progress rows it writes.

As TRL's ``RichProgressCallback`` renders logs, ``StoreProgress`` has one hook per event and
writes only on rank 0; the stop, NaN and early-stop rules run on every rank alike.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import TrainerControl, TrainerState
from transformers.training_args import TrainingArguments

from store.clock import now_iso
from store.database import open_database
from store.runs import RunMetric, record_step, set_max_steps
from trainer.control.config import RunConfig
from trainer.training.reporting import TrainingFailed, log


class StopRequest:
    """Set by SIGTERM: finish the current step, save a checkpoint, end as ``stopped``."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        """Route SIGTERM to this request instead of ending the process at once."""
        signal.signal(signal.SIGTERM, self._on_signal)

    def on_any_rank(self, device: torch.device | str) -> bool:
        """Whether a stop was requested on any rank (on this one, outside torchrun)."""
        if not torch.distributed.is_initialized():
            return self.requested
        value = torch.tensor([int(self.requested)], device=device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        log("SIGTERM received: stopping after this step, with a checkpoint")


class StoreProgress(TrainerCallback):
    """Writes one progress row per logged step and enforces stop, NaN and early-stop rules."""

    def __init__(self, db_path: Path, run_id: int, config: RunConfig, stop: StopRequest) -> None:
        self.db = open_database(db_path)
        self.run_id = run_id
        self.config = config
        self.stop = stop
        self.best_eval_loss = math.inf
        self.evals_without_improvement = 0
        self.session_start: tuple[float, int] | None = None
        self.last_tokens: tuple[float, float] | None = None

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if state.is_world_process_zero:
            set_max_steps(self.db, self.run_id, state.max_steps)
        self.session_start = (time.monotonic(), state.global_step)

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        if self.stop.on_any_rank(args.device):
            # Every rank stops at the same step, or the others would wait for it forever.
            control.should_save = True
            control.should_training_stop = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not logs:
            return
        loss = logs.get("loss")
        eval_loss = logs.get("eval_loss")
        if loss is None and eval_loss is None:
            return
        for name, value in (("loss", loss), ("eval loss", eval_loss)):
            if value is not None and not math.isfinite(value):
                raise TrainingFailed(
                    f"the {name} became {value} at step {state.global_step}; lower the "
                    "learning rate (--learning-rate) and try again"
                )
        if eval_loss is not None:
            # Every rank sees the same (gathered) eval loss, so they all stop at one step.
            self._early_stop(eval_loss, state, control)
        if not state.is_world_process_zero:
            return
        now = time.monotonic()
        tokens_per_second = None
        tokens = logs.get("num_tokens")
        if tokens is not None:
            if self.last_tokens is not None and tokens > self.last_tokens[1]:
                tokens_per_second = (tokens - self.last_tokens[1]) / max(
                    now - self.last_tokens[0], 1e-6
                )
            self.last_tokens = (now, tokens)
        eta_seconds = None
        if self.session_start is not None and state.global_step > self.session_start[1]:
            seconds_per_step = (now - self.session_start[0]) / (
                state.global_step - self.session_start[1]
            )
            eta_seconds = seconds_per_step * (state.max_steps - state.global_step)
        record_step(
            self.db,
            RunMetric(
                run_id=self.run_id,
                step=state.global_step,
                epoch=logs.get("epoch", state.epoch),
                loss=loss,
                eval_loss=eval_loss,
                learning_rate=logs.get("learning_rate"),
                grad_norm=logs.get("grad_norm"),
                tokens=int(tokens) if tokens is not None else None,
                tokens_per_second=tokens_per_second,
                eta_seconds=eta_seconds,
                recorded_at=now_iso(),
            ),
        )

    def _early_stop(self, eval_loss: float, state: TrainerState, control: TrainerControl) -> None:
        if eval_loss < self.best_eval_loss:
            self.best_eval_loss = eval_loss
            self.evals_without_improvement = 0
            return
        self.evals_without_improvement += 1
        # Never before one full epoch: early eval losses are noisy on a few dozen rows.
        if (
            self.evals_without_improvement >= self.config.early_stopping_patience
            and state.epoch is not None
            and state.epoch >= 1
        ):
            log(
                f"Eval loss has not improved for {self.evals_without_improvement} evaluations"
                f" (best {self.best_eval_loss:.4f}): stopping early at step {state.global_step}"
            )
            control.should_training_stop = True
