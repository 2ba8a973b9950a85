"""A training run: ``python -m trainer.training.run --db PATH --run-id N [--resume]``.

Read top to bottom like TRL's ``sft.py``: load the snapshot and the base model, build the
trainer, train, save. The process is detached from any terminal; it reports through its run
row and progress rows in the store, and through its log file (its stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import importlib.util
import json
import math
import os
import shutil
import signal
import sys
import time
import types
import warnings
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import TrainerControl, TrainerState
from transformers.training_args import TrainingArguments
from trl import SFTConfig, SFTTrainer
from trl.kernels import ChunkedLogProbFunction
from trl.trainer.utils import FusedCausalLMOutput

from store.clock import now_iso
from store.database import open_database
from store.errors import TunesmithError, is_disk_full
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
from trainer.control.config import RunConfig
from trainer.control.distributed import (
    cpu_threads_per_rank,
    current_rank,
    launcher_reports_failures,
    read_launch,
    recorded_pid,
    report_rank_failure,
    strategy_arguments,
)
from trainer.control.snapshot import EVAL_FILE, TRAIN_FILE, read_snapshot_rows, with_system_prompt
from trainer.evaluation import evaluate_run
from trainer.models import load_base_model, resolve_base_model
from trainer.training.hardware import (
    Speedups,
    activations_fit,
    choose_precision,
    choose_speedups,
    choose_threads,
)

CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_MARKER = "tunesmith-checkpoint.json"
"""Written last into a checkpoint: its run, step and the sha256 of every file in it. Only
folders whose marker names this run and whose files still match it are resumed from."""
NEARLY_FULL_BYTES = 1024**2
"""Free space under which a failed save is put down to a full disk (torch's message hides it)."""
LENGTH_MARGIN = 8
"""Tokens of head-room over the longest row, so no example is ever cut."""
HEAD_CHUNK = 32768
"""Vocabulary columns per LM-head tile, as in TRL's fused head."""
PLAIN_HEAD_ELEMENTS = 32 * 1024 * 1024
"""Most logits (trained positions x vocabulary) scored with plain autograd, which keeps them
for the backward pass: 128 MiB in fp32 (8 rows of 80 answer tokens on a 49k vocabulary take
a sixth of it). Beyond that, TRL's chunked kernel recomputes them instead."""
SCALED_HEAD_SETTINGS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
    "output_router_logits",
)
"""Config fields of models whose head scales or caps its logits, or that add a router loss:
these keep TRL's own fused head, which handles them."""


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
        _log("SIGTERM received: stopping after this step, with a checkpoint")


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
        if _any_rank(self.stop.requested, args.device):
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
            _log(
                f"Eval loss has not improved for {self.evals_without_improvement} evaluations"
                f" (best {self.best_eval_loss:.4f}): stopping early at step {state.global_step}"
            )
            control.should_training_stop = True


def plain_head(config: Any) -> bool:
    """Whether a model's logits are its last hidden state times the head, and nothing else."""
    text = config.get_text_config()
    return text is config and all(
        getattr(text, name, None) in (None, False) for name in SCALED_HEAD_SETTINGS
    )


def plain_head_scores(
    rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probability of each target (with gradients), and the entropy and top-1 hit of each row.

    Plain autograd keeps the logits for the backward pass instead of recomputing them as TRL's
    chunked kernel does: twice as fast on a CPU, for the memory of the logits, which the caller
    bounds with ``PLAIN_HEAD_ELEMENTS``.
    """
    logits = rows @ weight.T
    if bias is not None:
        logits = logits + bias
    log_softmax = torch.log_softmax(logits.float(), dim=-1)
    log_probs = log_softmax.gather(-1, targets[:, None]).squeeze(-1)
    with torch.no_grad():
        entropy = -(log_softmax.exp() * log_softmax).sum(-1)
        is_top1 = log_softmax.argmax(-1) == targets
    return log_probs, entropy, is_top1


def score_completions_only(model: PreTrainedModel) -> None:
    """Make ``model(..., fused_lm_head=True)`` project only the trained positions.

    TRL's fused head projects only positions with a label where Triton runs; elsewhere it
    projects every position, prompt and padding included. On the embedded model (vocabulary
    49152, hidden 576) that head was half of a CPU step, and the prompts are most of a row.
    Loss, entropy and accuracy are TRL's, from the same kernel on fewer rows. Patched on
    ``forward`` like TRL's head, so a DDP-wrapped model still syncs its gradients.
    """
    fused_forward = model.forward

    @functools.wraps(type(model).forward)
    def forward(
        self: PreTrainedModel,
        *args: Any,
        fused_lm_head: bool = False,
        labels: torch.Tensor | None = None,
        shift_labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs: Any,
    ) -> Any:
        if not fused_lm_head or labels is None or shift_labels is not None:
            return fused_forward(
                *args,
                fused_lm_head=fused_lm_head,
                labels=labels,
                shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch,
                **kwargs,
            )
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        mask = targets != -100
        head = self.get_output_embeddings()
        rows, trained = hidden[mask], targets[mask]
        if rows.shape[0] * head.weight.shape[0] <= PLAIN_HEAD_ELEMENTS:
            log_probs, entropy, is_top1 = plain_head_scores(rows, head.weight, head.bias, trained)
        else:
            log_probs, entropy, _, _, is_top1 = ChunkedLogProbFunction.apply(
                rows,
                head.weight,
                head.bias,
                trained,
                1.0,
                HEAD_CHUNK,
                None,
                1.0,
                ("log_probs", "entropy", "is_top1"),
            )
        # Back to [batch, length - 1], zero where nothing is trained, as TRL's metrics expect.
        log_probs, entropy, is_top1 = (
            values.new_zeros(mask.shape).masked_scatter(mask, values)
            for values in (log_probs, entropy, is_top1)
        )
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count,
            log_probs=log_probs,
            entropy=entropy,
            is_top1=is_top1,
            label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)


class FastSFTTrainer(SFTTrainer):
    """An SFTTrainer with the speedups TRL leaves off on this machine (``speed``)."""

    def __init__(self, *args: Any, speed: Speedups, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base: Any = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        if speed.completion_head and plain_head(base.config):
            score_completions_only(base)


class AtomicCheckpointTrainer(FastSFTTrainer):
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
        # Several ranks write one checkpoint (each its RNG state, shards under FSDP/ZeRO);
        # rank 0 alone clears, marks and renames it, between barriers.
        zero = self.is_world_process_zero()
        if zero:
            shutil.rmtree(staging, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        step = self.state.global_step
        written = staging / f"{CHECKPOINT_PREFIX}{step}"
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()
            if zero:
                write_checkpoint_marker(written, run_id=self._run_id, step=step)
        except Exception as error:
            what = f"the checkpoint at step {step}"
            _drop_staging(error, staging, what, folder=root, checkpoints=root, run_id=self._run_id)
            raise
        finally:
            self._staging = False
        if zero:
            final = root / f"{CHECKPOINT_PREFIX}{step}"
            _remove_checkpoint(final)
            written.replace(final)
            _fsync_dir(root)
            shutil.rmtree(staging, ignore_errors=True)
            for old in complete_checkpoints(root)[: -self._keep]:
                _remove_checkpoint(old)
            set_checkpoint(self._db, self._run_id, step)
            _log(f"Checkpoint saved at step {step}")
        self.accelerator.wait_for_everyone()


def complete_checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders that hold a marker (were written completely), oldest first."""
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


def write_checkpoint_marker(folder: Path, *, run_id: int, step: int) -> None:
    """Mark ``folder`` as run ``run_id``'s complete checkpoint at ``step``, hashing its files."""
    marker = {
        "run_id": run_id,
        "step": step,
        "written_at": now_iso(),
        "files": _file_digests(folder),
    }
    (folder / CHECKPOINT_MARKER).write_text(json.dumps(marker), encoding="utf-8")


def checkpoint_problem(folder: Path, run_id: int) -> str | None:
    """Why run ``run_id`` must not resume from ``folder``, or None when tunesmith wrote it so."""
    try:
        marker = json.loads((folder / CHECKPOINT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "its marker is unreadable"
    if not isinstance(marker, dict) or not isinstance(marker.get("files"), dict):
        return "its marker lists no files"
    if marker.get("run_id") != run_id:
        return f"it was written by run {marker.get('run_id')!r}, not run {run_id}"
    if f"{CHECKPOINT_PREFIX}{marker.get('step')}" != folder.name:
        return f"its marker names step {marker.get('step')!r}"
    if any(path.is_symlink() for path in folder.rglob("*")):
        return "it holds a link"
    actual = _file_digests(folder)
    for name in sorted(set(actual) | set(marker["files"])):
        if actual.get(name) != marker["files"].get(name):
            return f"{name} is not the file that was saved"
    return None


def resumable_checkpoint(root: Path, run_id: int) -> Path | None:
    """The newest checkpoint in ``root`` that run ``run_id`` wrote and nobody changed since."""
    for folder in reversed(complete_checkpoints(root)):
        problem = checkpoint_problem(folder, run_id)
        if problem is None:
            return folder
        _log(f"Not resuming from {folder.name}: {problem}")
    return None


def _file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` but the marker, by relative path."""
    digests: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != CHECKPOINT_MARKER:
            with path.open("rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            digests[path.relative_to(folder).as_posix()] = digest
    return digests


def _remove_checkpoint(folder: Path) -> None:
    """Delete a checkpoint, its marker first, so a kill midway never leaves a marked husk."""
    (folder / CHECKPOINT_MARKER).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def _drop_staging(
    error: Exception, staging: Path, what: str, *, folder: Path, checkpoints: Path, run_id: int
) -> None:
    """After a failed save of ``what`` into ``folder``, remove its half-written ``staging``;
    a full disk becomes a TrainingFailed that names the last checkpoint and how to go on,
    anything else is the caller's to re-raise."""
    full = is_disk_full(error) or _nearly_full(folder)
    shutil.rmtree(staging, ignore_errors=True)
    if full:
        raise TrainingFailed(
            f"the disk is full: {what} could not be saved in {folder};"
            f" {_last_checkpoint_note(checkpoints)}. Free some space, then resume:"
            f" tunesmith train --resume {run_id}"
        ) from error


def _nearly_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has almost no space left."""
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def _last_checkpoint_note(root: Path) -> str:
    """Which earlier checkpoint a failed save left in place, for the error message."""
    checkpoints = complete_checkpoints(root)
    if not checkpoints:
        return "there is no earlier checkpoint"
    return f"the last complete checkpoint ({checkpoints[-1].name}) is intact"


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

    source = resolve_base_model(base_model, _log)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    model = AutoModelForCausalLM.from_pretrained(
        source, quantization_config=quantization, device_map={"": current_rank().local_rank}
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
    speed: Speedups,
    recompute_activations: bool = False,
    world_size: int = 1,
    parallel: dict[str, Any] | None = None,
) -> SFTConfig:
    """TRL's arguments for a run: the chosen config plus what makes it fast and safe.

    ``batch_size`` is rows per optimizer step over all ``world_size`` ranks; ``parallel`` holds
    the arguments of the distributed strategy.
    """
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=config.max_steps,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size // world_size,
        per_device_eval_batch_size=config.batch_size // world_size,
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
        # Nothing is ever cut (max_length is over the longest row); padding-free batches
        # refuse a max_length without packing.
        max_length=None if speed.flash_attention else max_length,
        completion_only_loss=True,
        bf16=bf16,
        use_cpu=device == "cpu",
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        # Recomputing activations costs ~30% speed: only when they would not fit.
        activation_checkpointing=recompute_activations,
        optim="adamw_torch_fused" if speed.fused_optimizer else "adamw_torch",
        padding_free=speed.flash_attention,
        use_liger_kernel=speed.liger,
        **(parallel or {}),
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


def prepare_model(model: PreTrainedModel, speed: Speedups) -> None:
    """Store the base weights and pick the attention that ``speed`` calls for, in place."""
    if speed.bf16_weights:
        # peft makes the LoRA weights fp32 again, so the optimizer still steps in fp32.
        model.bfloat16()
    if speed.flash_attention:
        model.set_attn_implementation("flash_attention_2")


def recompute_activations(model: PreTrainedModel, tokens: int, device: str) -> bool:
    """Whether a GPU run must recompute activations to fit ``tokens`` per step in memory."""
    if device != "cuda":
        return False
    text = model.config.get_text_config()
    return not activations_fit(
        parameters=model.num_parameters(),
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size),
        tokens=tokens,
        memory_bytes=torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory,
    )


def main(argv: list[str] | None = None) -> int:
    """Run (or resume) one training run to its end; the exit status is 0 unless it failed."""
    parser = argparse.ArgumentParser(prog="python -m trainer.training.run")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--run-id", type=int, required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    # Checkpoints, adapters and logs are the user's data: private to them.
    os.umask(0o077)
    # The log's tail is shown to the person training; libraries' notes to their own
    # developers about deprecated names would only crowd it.
    warnings.filterwarnings("ignore", category=FutureWarning)
    stop = StopRequest()
    stop.install()
    db = open_database(args.db)
    run = get_run(db, args.run_id)
    # Under torchrun rank 0 alone writes the run row; the launcher names a rank that dies.
    zero = current_rank().is_zero
    if zero:
        mark_started(db, run.id, pid=recorded_pid())
    _log(f"Run {run.id} started (pid {os.getpid()})")
    try:
        status = train(args.db, run.id, resume=args.resume, stop=stop)
    except TunesmithError as error:
        # The row first: on a full disk the log cannot take the message.
        if zero:
            finish_run(db, run.id, "failed", error=error.message)
        report_rank_failure(error.message)
        _log(f"Run failed: {error.message}")
        return 1
    except Exception as error:
        if is_disk_full(error):
            message = f"the disk is full: {_first_line(error)}"
        else:
            message = f"{type(error).__name__}: {_first_line(error)}"
        if zero and not launcher_reports_failures():
            finish_run(db, run.id, "failed", error=message)
        report_rank_failure(message)
        _log(f"Run failed: {message}")
        import traceback

        with contextlib.suppress(OSError):
            traceback.print_exc()
        return 1
    _log(f"Run {run.id} {status}")
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
    rank = current_rank()
    if device == "cpu" and rank.local_world_size > 1:
        # The ranks on this machine share its cores; measuring each alone would oversubscribe.
        torch.set_num_threads(cpu_threads_per_rank(rank.local_world_size))
        threads = torch.get_num_threads()
    else:
        threads = choose_threads() if device == "cpu" else torch.get_num_threads()
    precision = choose_precision(device)
    _log(f"Device {device}, {threads} threads, {precision.name}: {precision.reason}")
    if config.qlora:
        model, tokenizer = load_4bit_model(project.base_model, device)
    else:
        model, tokenizer = load_base_model(project.base_model, on_status=_log)
    speed = choose_speedups(
        device,
        bf16=precision.bf16,
        lora=not config.full,
        quantized=config.qlora,
        target_modules=config.target_modules,
    )
    prepare_model(model, speed)
    if stop.requested and rank.world_size == 1:
        # Several ranks instead stop together at the first step's end.
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
    _log(f"Longest row: {longest} tokens (example {longest_id}); max length {max_length}")
    peft_config = lora_config(config)
    sft_args = training_arguments(
        config,
        output_dir=run_dir / "checkpoints",
        max_length=max_length,
        bf16=precision.bf16,
        device=device,
        evaluate=bool(eval_rows and config.eval_every),
        speed=speed,
        # The whole batch, as if on one GPU: with several, this errs toward recomputing.
        recompute_activations=recompute_activations(model, config.batch_size * max_length, device),
        world_size=rank.world_size,
        parallel=(
            strategy_arguments(read_launch(run_dir).strategy, run_dir)
            if rank.world_size > 1
            else None
        ),
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
        speed=speed,
    )
    check_end_of_turn_is_trained(trainer, tokenizer)
    used = {**config.to_dict(), "max_length": max_length, "threads": threads}
    used["precision"] = precision.name
    used["speedups"] = [name for name, on in asdict(speed).items() if on]
    if rank.world_size > 1:
        used.update(processes=rank.world_size, strategy=read_launch(run_dir).strategy)
    if rank.is_zero:
        set_config(db, run.id, used)
    _log(f"Config: {json.dumps(used)}")

    # Train
    checkpoint = resumable_checkpoint(run_dir / "checkpoints", run.id) if resume else None
    resume_from = str(checkpoint) if checkpoint is not None else None
    if resume and resume_from is None:
        _log("No complete checkpoint yet: starting from step 0")
    elif resume_from:
        _log(f"Resuming from {resume_from}")
    trainer.train(resume_from_checkpoint=resume_from)
    if _any_rank(stop.requested, sft_args.device):
        if rank.is_zero:
            finish_run(db, run.id, "stopped")
        return "stopped"

    # Save
    adapter_dir = save_final(trainer, tokenizer, run_dir, run.id)
    if not rank.is_zero:
        return "completed"
    finish_run(db, run.id, "completed", adapter_path=str(adapter_dir))

    # Evaluate, so the before/after is waiting when the user looks.
    if eval_rows:
        del trainer, model
        _log("Evaluating base and tuned on the eval rows...")
        try:
            result = evaluate_run(db_path, run.id)
        except TunesmithError as error:
            _log(f"Evaluation failed: {error.message}")
        else:
            _log(f"Evaluation: base {result.base}, tuned {result.tuned}")
    return "completed"


def save_final(
    trainer: SFTTrainer, tokenizer: PreTrainedTokenizerBase, run_dir: Path, run_id: int
) -> Path:
    """Save the adapter (or full model) and tokenizer to ``run_dir/adapter``, atomically."""
    final = run_dir / "adapter"
    staging = run_dir / ".adapter.staging"
    if not trainer.is_world_process_zero():
        # The other ranks take part in gathering sharded weights; rank 0 writes them.
        trainer.save_model(str(staging))
        return final
    shutil.rmtree(staging, ignore_errors=True)
    try:
        trainer.save_model(str(staging))
        tokenizer.save_pretrained(str(staging))
    except Exception as error:
        checkpoints = run_dir / "checkpoints"
        _drop_staging(
            error,
            staging,
            "the trained adapter",
            folder=run_dir,
            checkpoints=checkpoints,
            run_id=run_id,
        )
        raise
    # The Trainer pickles its arguments next to the weights; an adapter folder holds only
    # safetensors and JSON, so nothing in it can run code when loaded.
    (staging / "training_args.bin").unlink(missing_ok=True)
    shutil.rmtree(final, ignore_errors=True)
    staging.replace(final)
    return final


def _any_rank(flag: bool, device: torch.device | str) -> bool:
    """Whether ``flag`` is set on any rank (itself, outside torchrun)."""
    if not torch.distributed.is_initialized():
        return flag
    value = torch.tensor([int(flag)], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def _log(message: str) -> None:
    """Print a line to the run's log; a log that cannot be written (a full disk) is skipped."""
    rank = current_rank()
    if rank.world_size > 1:
        # The ranks share one log.
        message = f"[rank {rank.rank}] {message}"
    with contextlib.suppress(OSError):
        print(message, flush=True)


def _first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message."""
    for line in str(error).splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
