"""A training run: ``python -m trainer.run --db PATH --run-id N [--resume]``.

Read top to bottom like TRL's ``sft.py``: load the snapshot and the base model, build the
trainer, train, save. The process is detached from any terminal; it reports through its run
row and progress rows in the store, and through its log file (its stdout).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import TrainerControl, TrainerState
from transformers.training_args import TrainingArguments
from trl import SFTConfig, SFTTrainer

from store.clock import now_iso
from store.database import open_database
from store.errors import TunesmithError
from store.projects import get_project_by_id
from store.runs import (
    RunMetric,
    finish_run,
    get_run,
    mark_started,
    record_step,
    set_checkpoint,
    set_config,
    set_max_steps,
)
from trainer.config import RunConfig
from trainer.evaluation import evaluate_run
from trainer.hardware import choose_precision, choose_threads
from trainer.models import load_base_model, resolve_base_model
from trainer.snapshot import EVAL_FILE, TRAIN_FILE, read_snapshot_rows, with_system_prompt

CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_MARKER = "tunesmith-checkpoint.json"
"""Written last into a checkpoint: only folders holding it are ever resumed from."""
LENGTH_MARGIN = 8
"""Tokens of head-room over the longest row, so no example is ever cut."""


class TrainingFailed(TunesmithError):
    """The run cannot go on (diverged, or its data does not fit the model)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, title="Training failed")


class StopRequest:
    """Set by SIGTERM: finish the current step, save a checkpoint, end as ``stopped``."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        """Route SIGTERM to this request instead of ending the process at once."""
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        print("SIGTERM received: stopping after this step, with a checkpoint", flush=True)


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
        if self.stop.requested:
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
        if not state.is_world_process_zero or not logs:
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
        if eval_loss is not None:
            self._early_stop(eval_loss, state, control)

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
            print(
                f"Eval loss has not improved for {self.evals_without_improvement} evaluations"
                f" (best {self.best_eval_loss:.4f}): stopping early at step {state.global_step}",
                flush=True,
            )
            control.should_training_stop = True


class AtomicCheckpointTrainer(SFTTrainer):
    """An SFTTrainer whose checkpoints appear only when complete.

    Each checkpoint is written into a staging folder, marked, and renamed into place; a
    process killed mid-save leaves only staging debris, which is never resumed from.
    """

    def __init__(self, *args: Any, db_path: Path, run_id: int, keep: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._staging = False
        self._db = open_database(db_path)
        self._run_id = run_id
        self._keep = keep

    def _get_output_dir(self, trial: Any) -> str:
        if self._staging:
            return str(Path(str(self.args.output_dir)) / ".staging")
        return str(super()._get_output_dir(trial))

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        root = Path(str(self.args.output_dir))
        staging = root / ".staging"
        shutil.rmtree(staging, ignore_errors=True)
        step = self.state.global_step
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = False
        written = staging / f"{CHECKPOINT_PREFIX}{step}"
        marker = {"run_id": self._run_id, "step": step, "written_at": now_iso()}
        (written / CHECKPOINT_MARKER).write_text(json.dumps(marker), encoding="utf-8")
        final = root / f"{CHECKPOINT_PREFIX}{step}"
        shutil.rmtree(final, ignore_errors=True)
        written.replace(final)
        _fsync_dir(root)
        shutil.rmtree(staging, ignore_errors=True)
        for old in complete_checkpoints(root)[: -self._keep]:
            shutil.rmtree(old, ignore_errors=True)
        if self.state.is_world_process_zero:
            set_checkpoint(self._db, self._run_id, step)
        print(f"Checkpoint saved at step {step}", flush=True)


def complete_checkpoints(root: Path) -> list[Path]:
    """Checkpoints this run wrote completely, oldest first."""
    if not root.is_dir():
        return []
    found = [
        path
        for path in root.glob(f"{CHECKPOINT_PREFIX}*")
        if path.is_dir()
        and path.name.removeprefix(CHECKPOINT_PREFIX).isdigit()
        and (path / CHECKPOINT_MARKER).is_file()
    ]
    return sorted(found, key=lambda path: int(path.name.removeprefix(CHECKPOINT_PREFIX)))


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def to_prompt_completion(
    rows: list[dict[str, Any]], system_prompt: str | None
) -> list[dict[str, Any]]:
    """Chat rows as TRL's conversational prompt/completion: the loss covers the last answer only."""
    converted = []
    for row in rows:
        messages = with_system_prompt(row["messages"], system_prompt)
        converted.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return converted


def longest_row(
    rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, system_prompt: str | None
) -> tuple[int, int]:
    """The token length of the longest row and that row's example id."""
    longest, longest_id = 0, -1
    for row in rows:
        messages = with_system_prompt(row["messages"], system_prompt)
        length = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
        if length > longest:
            longest, longest_id = length, row["id"]
    return longest, longest_id


def check_end_of_turn_is_trained(trainer: SFTTrainer, tokenizer: PreTrainedTokenizerBase) -> None:
    """Fail early unless every training row teaches the model to end its turn.

    With pad == eos a careless collator masks every eos as padding, and the tuned model then
    never stops talking.
    """
    eos_id = tokenizer.eos_token_id
    batch = next(iter(trainer.get_train_dataloader()))
    labels = batch["labels"]
    for row_labels in labels:
        trained = row_labels[row_labels != -100]
        if trained.numel() == 0 or eos_id not in trained.tolist():
            raise TrainingFailed(
                f"the end-of-turn token {tokenizer.eos_token!r} is not in the trained labels; "
                "the tuned model would not learn to stop"
            )


def load_4bit_model(
    base_model: str, device: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model with 4-bit NF4 weights for QLoRA; CUDA and bitsandbytes only."""
    if device != "cuda":
        raise TrainingFailed("--qlora needs a CUDA GPU (4-bit weights); this machine has none")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainingFailed("--qlora needs the bitsandbytes package: pip install bitsandbytes")
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    source = resolve_base_model(base_model, _print_status)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    model = AutoModelForCausalLM.from_pretrained(
        source, quantization_config=quantization, device_map={"": 0}
    )
    return prepare_model_for_kbit_training(model), AutoTokenizer.from_pretrained(source)


def training_arguments(
    config: RunConfig,
    *,
    output_dir: Path,
    max_length: int,
    bf16: bool,
    device: str,
    evaluate: bool,
) -> SFTConfig:
    """TRL's arguments for a run: the chosen config plus what makes it fast and safe."""
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=config.max_steps,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_steps,
        logging_steps=1,
        # NaN and inf must reach the progress callback, not be averaged away.
        logging_nan_inf_filter=False,
        save_strategy="steps",
        save_steps=config.save_every,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=config.eval_every or None,
        max_length=max_length,
        completion_only_loss=True,
        bf16=bf16,
        use_cpu=device == "cpu",
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        # Recomputing activations saves memory a small model does not need, at ~30% speed.
        activation_checkpointing=False,
    )


def lora_config(config: RunConfig) -> LoraConfig | None:
    """The LoRA adapter to train, or None for a full fine-tune."""
    if config.full:
        return None
    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        task_type="CAUSAL_LM",
    )


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) one training run to its end; the exit status is 0 unless it failed."""
    parser = argparse.ArgumentParser(prog="python -m trainer.run")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    # Checkpoints, adapters and logs are the user's data: private to them.
    os.umask(0o077)
    stop = StopRequest()
    stop.install()
    db = open_database(args.db)
    run = get_run(db, args.run_id)
    mark_started(db, run.id, pid=os.getpid())
    print(f"Run {run.id} started (pid {os.getpid()})", flush=True)
    try:
        status = train(args.db, run.id, resume=args.resume, stop=stop)
    except TunesmithError as error:
        print(f"Run failed: {error.message}", flush=True)
        finish_run(db, run.id, "failed", error=error.message)
        return 1
    except Exception as error:
        message = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        print(f"Run failed: {message}", flush=True)
        import traceback

        traceback.print_exc()
        finish_run(db, run.id, "failed", error=message)
        return 1
    print(f"Run {run.id} {status}", flush=True)
    return 0


def train(db_path: Path, run_id: int, *, resume: bool, stop: StopRequest) -> str:
    """Train run ``run_id`` and return how it ended: ``completed`` or ``stopped``."""
    db = open_database(db_path)
    run = get_run(db, run_id)
    project = get_project_by_id(db, run.project_id)
    assert run.run_dir is not None
    run_dir = Path(run.run_dir)
    config = RunConfig.from_dict(run.config)

    # Load
    train_rows = read_snapshot_rows(run_dir / TRAIN_FILE)
    eval_rows = read_snapshot_rows(run_dir / EVAL_FILE)
    if not train_rows:
        raise TrainingFailed("the snapshot has no training rows")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = choose_threads() if device == "cpu" else torch.get_num_threads()
    precision = choose_precision(device)
    print(f"Device {device}, {threads} threads, {precision.name}: {precision.reason}", flush=True)
    if config.qlora:
        model, tokenizer = load_4bit_model(project.base_model, device)
    else:
        model, tokenizer = load_base_model(project.base_model, on_status=_print_status)
    if stop.requested:
        finish_run(db, run.id, "stopped", error=None)
        return "stopped"

    # Build
    longest, longest_id = longest_row(train_rows + eval_rows, tokenizer, project.system_prompt)
    context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    if context and longest > context:
        raise TrainingFailed(
            f"example {longest_id} is {longest} tokens, longer than the model's context "
            f"({context}); shorten or remove it"
        )
    max_length = longest + LENGTH_MARGIN
    print(f"Longest row: {longest} tokens (example {longest_id}); max length {max_length}")
    peft_config = lora_config(config)
    sft_args = training_arguments(
        config,
        output_dir=run_dir / "checkpoints",
        max_length=max_length,
        bf16=precision.bf16,
        device=device,
        evaluate=bool(eval_rows and config.eval_every),
    )
    progress = StoreProgress(db_path, run.id, config, stop)
    trainer = AtomicCheckpointTrainer(
        model=model,
        args=sft_args,
        train_dataset=Dataset.from_list(to_prompt_completion(train_rows, project.system_prompt)),
        eval_dataset=(
            Dataset.from_list(to_prompt_completion(eval_rows, project.system_prompt))
            if eval_rows and config.eval_every
            else None
        ),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress],
        db_path=db_path,
        run_id=run.id,
        keep=config.keep_checkpoints,
    )
    check_end_of_turn_is_trained(trainer, tokenizer)
    used = {**config.to_dict(), "max_length": max_length, "threads": threads}
    used["precision"] = precision.name
    set_config(db, run.id, used)
    print(f"Config: {json.dumps(used)}", flush=True)

    # Train
    checkpoints = complete_checkpoints(run_dir / "checkpoints")
    resume_from = str(checkpoints[-1]) if resume and checkpoints else None
    if resume and resume_from is None:
        print("No complete checkpoint yet: starting from step 0", flush=True)
    elif resume_from:
        print(f"Resuming from {resume_from}", flush=True)
    trainer.train(resume_from_checkpoint=resume_from)
    if stop.requested:
        finish_run(db, run.id, "stopped")
        return "stopped"

    # Save
    adapter_dir = save_final(trainer, tokenizer, run_dir)
    finish_run(db, run.id, "completed", adapter_path=str(adapter_dir))

    # Evaluate, so the before/after is waiting when the user looks.
    if eval_rows:
        del trainer, model
        print("Evaluating base and tuned on the eval rows...", flush=True)
        try:
            result = evaluate_run(db_path, run.id)
        except TunesmithError as error:
            print(f"Evaluation failed: {error.message}", flush=True)
        else:
            print(f"Evaluation: base {result.base}, tuned {result.tuned}", flush=True)
    return "completed"


def save_final(trainer: SFTTrainer, tokenizer: PreTrainedTokenizerBase, run_dir: Path) -> Path:
    """Save the adapter (or full model) and tokenizer to ``run_dir/adapter``, atomically."""
    final = run_dir / "adapter"
    staging = run_dir / ".adapter.staging"
    shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))
    tokenizer.save_pretrained(str(staging))
    # The Trainer pickles its arguments next to the weights; an adapter folder holds only
    # safetensors and JSON, so nothing in it can run code when loaded.
    (staging / "training_args.bin").unlink(missing_ok=True)
    shutil.rmtree(final, ignore_errors=True)
    staging.replace(final)
    return final


def _print_status(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
