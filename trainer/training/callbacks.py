"""The run's hooks into the Trainer: the stop request, and the progress rows it writes.

As TRL's ``RichProgressCallback`` renders logs, ``StoreProgress`` has one hook per event and
writes only on rank 0; the stop, NaN, budget and validation rules run on every rank alike.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Iterator
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
from trainer.control.config import RunConfig, default_budget, format_seconds
from trainer.control.stopping import Check, Verdict, check_text, judge, stop_reason
from trainer.training.reporting import TrainingFailed, log
from trainer.training.validation import SCORE_METRIC

SCORE_KEY = f"eval_{SCORE_METRIC}"
SPEED_STEPS = 2
"""Steps timed before a default budget is set from the measured speed."""
TRAINED_KEY = "trained_seconds"
"""The log history's record of training time so far, which a resume restores with it."""


class StopRequest:
    """Set by SIGTERM: finish the current step, save a checkpoint, end as ``stopped``; once the
    run is completed, end its evaluation."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        """Route SIGTERM to this request instead of ending the process at once."""
        signal.signal(signal.SIGTERM, self._on_signal)

    def on_any_rank(self, device: torch.device | str) -> bool:
        """Whether a stop was requested on any rank (on this one, outside torchrun)."""
        return on_any_rank(self.requested, device)

    @contextlib.contextmanager
    def ending_evaluation(self) -> Iterator[None]:
        """Within this block SIGTERM (or one already received) raises ``EvaluationStopped``:
        the run is completed and its adapter saved, and the evaluation in the block stores
        nothing until its end, so there is no step to finish first. After it, SIGTERM is only
        noted: nothing is left to stop."""
        signal.signal(signal.SIGTERM, self._on_signal_while_evaluating)
        try:
            if self.requested:
                raise EvaluationStopped
            yield
        finally:
            signal.signal(signal.SIGTERM, self._note_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        log("SIGTERM received: stopping after this step, with a checkpoint")

    def _on_signal_while_evaluating(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        raise EvaluationStopped

    def _note_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


class EvaluationStopped(Exception):
    """SIGTERM arrived while the run evaluated itself after training."""


def on_any_rank(flag: bool, device: torch.device | str) -> bool:
    """Whether ``flag`` holds on any rank (this one's, outside torchrun)."""
    if not torch.distributed.is_initialized():
        return flag
    value = torch.tensor([int(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


class StoreProgress(TrainerCallback):
    """Writes one progress row per logged step and enforces stop, NaN, budget and
    validation rules.

    ``keeps_best``: the run validates itself on rows it never trains on, so its best check's
    checkpoint becomes the adapter; otherwise (eval rows watched) checks only stop it early.
    ``fixed_steps``: the fixed-epoch plan's steps, which a default budget is measured against.
    """

    def __init__(
        self,
        db_path: Path,
        run_id: int,
        config: RunConfig,
        stop: StopRequest,
        *,
        keeps_best: bool = False,
        metric: str | None = None,
        fixed_steps: int = 0,
    ) -> None:
        self.db = open_database(db_path)
        self.run_id = run_id
        self.config = config
        self.stop = stop
        self.keeps_best = keeps_best
        self.metric = metric
        self.checks: list[Check] = []
        self.verdict: Verdict | None = None
        self.stop_reason: str | None = None
        """Why training ended before its last step, once it has."""
        self.budget: float | None = float(config.budget_seconds) or None
        self.default_budget = keeps_best and not config.budget_seconds
        self.fixed_steps = fixed_steps
        self.session_start: tuple[float, int] | None = None
        """When and at which step this process began training."""
        self.trained_before = 0.0
        """Seconds of training before this process: a resume spends what is left of the budget."""
        self.steps_taken: tuple[float, int] | None = None
        """When and at which step this process last ended a step."""
        self.last_tokens: tuple[float, float] | None = None

    @property
    def best_step(self) -> int | None:
        """The step of the best check so far, for a run that keeps its best checkpoint."""
        if not self.keeps_best or self.verdict is None:
            return None
        return self.verdict.best.step

    def seconds_per_step(self) -> float | None:
        """This process's measured time per step, once it has taken one."""
        if self.session_start is None or self.steps_taken is None:
            return None
        started, first_step = self.session_start
        if self.steps_taken[1] <= first_step:
            return None
        return (self.steps_taken[0] - started) / (self.steps_taken[1] - first_step)

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
        self.steps_taken = None
        self.trained_before = max(
            (float(entry[TRAINED_KEY]) for entry in state.log_history if TRAINED_KEY in entry),
            default=0.0,
        )
        # A resumed run's earlier checks are in the state its checkpoint restored.
        self.checks = [
            Check(
                step=int(entry["step"]),
                epoch=float(entry.get("epoch") or 0.0),
                score=entry.get(SCORE_KEY),
                loss=entry.get("eval_loss"),
            )
            for entry in state.log_history
            if "eval_loss" in entry and "step" in entry
        ]
        self.verdict = (
            judge(self.checks, self.config.early_stopping_patience) if self.checks else None
        )

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
            return
        now = time.monotonic()
        self.steps_taken = (now, state.global_step)
        per_step = self.seconds_per_step()
        if per_step is None or self.session_start is None:
            return
        if self.default_budget and self.session_start[1] + SPEED_STEPS <= state.global_step:
            self.default_budget = False
            self.budget = default_budget(per_step, self.fixed_steps)
            log(
                f"Budget: {format_seconds(self.budget)}, twice the fixed plan's"
                f" {self.fixed_steps} steps at {per_step:.2f} s/step (at least 10 minutes)"
            )
        # Stop before a step that would end past the budget; every rank stops together.
        out_of_time = self.budget is not None and self.trained(now) + per_step > self.budget
        if on_any_rank(out_of_time, args.device) and state.global_step < state.max_steps:
            assert self.budget is not None
            self.stop_reason = (
                f"the {format_seconds(self.budget)} budget ran out at step {state.global_step}"
            )
            log(f"Stopping: {self.stop_reason}")
            control.should_training_stop = True

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not metrics or "eval_loss" not in metrics:
            return
        # Every rank sees the same (gathered) eval loss and the same score, so all stop at once.
        check = Check(
            step=state.global_step,
            epoch=float(state.epoch or 0.0),
            score=metrics.get(SCORE_KEY),
            loss=metrics["eval_loss"],
        )
        self.checks.append(check)
        self.verdict = judge(self.checks, self.config.early_stopping_patience)
        best = self.verdict.best
        watched = "Validation" if self.keeps_best else "Eval"
        log(
            f"{watched} at step {check.step}: {check_text(check, self.metric or '')}"
            f" (best: step {best.step})"
        )
        if self.keeps_best and best is check and not control.should_save:
            # A new best must have its checkpoint, whatever the save cadence.
            control.should_save = True
        if self.verdict.stop:
            self.stop_reason = stop_reason(self.verdict, self.metric or "")
            log(f"Stopping early at step {state.global_step}: {self.stop_reason}")
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
        now = time.monotonic()
        if state.log_history:
            # Trainer.log has just appended this entry; a checkpoint saves it with the state.
            state.log_history[-1][TRAINED_KEY] = round(self.trained(now), 3)
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
        if not state.is_world_process_zero:
            return
        tokens_per_second = None
        tokens = logs.get("num_tokens")
        if tokens is not None:
            if self.last_tokens is not None and tokens > self.last_tokens[1]:
                tokens_per_second = (tokens - self.last_tokens[1]) / max(
                    now - self.last_tokens[0], 1e-6
                )
            self.last_tokens = (now, tokens)
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
                eta_seconds=self._eta(state, now),
                recorded_at=now_iso(),
                validation_score=logs.get(SCORE_KEY),
            ),
        )

    def trained(self, now: float) -> float:
        """Seconds of training up to ``now``, earlier processes of a resumed run included."""
        if self.session_start is None:
            return self.trained_before
        return self.trained_before + now - self.session_start[0]

    def _eta(self, state: TrainerState, now: float) -> float | None:
        """Seconds to the last step at the measured pace, or to the budget's end if sooner."""
        per_step = self.seconds_per_step()
        if per_step is None or self.session_start is None:
            return None
        eta = per_step * (state.max_steps - state.global_step)
        if self.budget is not None:
            eta = min(eta, max(0.0, self.budget - self.trained(now)))
        return eta
