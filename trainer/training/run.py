"""A training run: ``python -m trainer.training.run --db PATH --run-id N [--resume]``.

Read top to bottom like TRL's ``sft.py``: load the snapshot and the base model, build the
trainer, train, save. The process is detached from any terminal; it reports through its run
row and progress rows in the store, and through its log file (its stdout).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import sys
import traceback
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase
from trl import SFTTrainer

from store.atomic import publish_folder
from store.database import open_database
from store.errors import TunesmithError, is_disk_full, one_line_reason
from store.projects import Project, get_project_by_id
from store.runs import (
    finish_run,
    get_run,
    mark_started,
    set_config,
    set_costs,
    set_outcome,
)
from trainer.control.config import LORA_METHODS, RunConfig, fixed_plan_steps, steps_per_epoch
from trainer.control.distributed import (
    cpu_threads_per_rank,
    current_rank,
    launcher_reports_failures,
    read_launch,
    recorded_pid,
    report_rank_failure,
    strategy_arguments,
)
from trainer.control.forgetting import answers_for, general_prompts
from trainer.control.labels import spec_labels, task_labels
from trainer.control.snapshot import (
    EVAL_FILE,
    TRAIN_FILE,
    VALIDATION_FILE,
    read_snapshot_rows,
)
from trainer.control.stopping import check_text
from trainer.eval_generation import general_answers
from trainer.evaluation import evaluate_run
from trainer.models import load_base_model
from trainer.serving.inference import ModelPool
from trainer.training.arguments import (
    adapter_config,
    prepare_model,
    recompute_activations,
    training_arguments,
)
from trainer.training.callbacks import EvaluationStopped, StopRequest, StoreProgress
from trainer.training.checkpoints import (
    CHECKPOINT_PREFIX,
    checkpoint_problem,
    drop_staging,
    resumable_checkpoint,
)
from trainer.training.compiled_layers import LayerKind, use_compile_cache
from trainer.training.data import (
    LENGTH_MARGIN,
    check_end_of_turn_is_trained,
    longest_row,
    replay_rows,
    to_prompt_completion,
)
from trainer.training.hardware import (
    MatmulShape,
    choose_precision,
    choose_speedups,
    choose_threads,
    eager_scores_fit,
    keep_freed_memory,
)
from trainer.training.quantized import load_4bit_model
from trainer.training.reporting import TrainingFailed, log, log_failure
from trainer.training.validation import ValidatedTrainer, ValidationScorer

KEPT_WEIGHT_FILES = (".safetensors", ".safetensors.index.json", "adapter_config.json")
"""A checkpoint's files that make the adapter (or a full model's weights) it held."""

DEFAULT_INIT_TEXT = "Answer the request the way the examples do."
"""Prompt tuning's starting words for a project with neither a system prompt nor a goal."""

SHARDED_STRATEGIES = ("fsdp", "deepspeed-zero3")
"""Strategies whose ranks each hold a shard: one rank cannot answer the validation rows alone,
and a checkpoint is not one adapter file, so such runs stop on eval loss and keep their last."""


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
    log(f"Run {run.id} started (pid {os.getpid()})")
    try:
        status = train(args.db, run.id, resume=args.resume, stop=stop)
    except TunesmithError as error:
        # The row first: on a full disk the log cannot take the message.
        if zero:
            finish_run(db, run.id, "failed", error=error.message)
        report_rank_failure(error.message)
        log_failure(error.message)
        return 1
    except Exception as error:
        if is_disk_full(error):
            message = f"the disk is full: {one_line_reason(error)}"
        else:
            message = one_line_reason(error)
        if zero and not launcher_reports_failures():
            finish_run(db, run.id, "failed", error=message)
        report_rank_failure(message)
        with contextlib.suppress(OSError):
            traceback.print_exc()
        log_failure(message)
        return 1
    log(f"Run {run.id} {status}")
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
    # Eval loss and early stopping read the validation rows where the snapshot has them, so
    # the eval rows stay the untouched test of the final model.
    validation_rows = read_snapshot_rows(run_dir / VALIDATION_FILE)
    watched = validation_rows or eval_rows
    if validation_rows:
        log(
            f"Validation: {len(validation_rows)} rows carved from the train rows give the eval"
            f" loss; the {len(eval_rows)} eval rows stay the final test"
        )
    if not train_rows:
        raise TrainingFailed("the snapshot has no training rows")
    task_rows = len(train_rows)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rank = current_rank()
    if device == "cpu" and rank.local_world_size > 1:
        # The ranks on this machine share its cores; measuring each alone would oversubscribe.
        torch.set_num_threads(cpu_threads_per_rank(rank.local_world_size))
        threads = torch.get_num_threads()
    else:
        threads = choose_threads() if device == "cpu" else torch.get_num_threads()
    if device == "cpu":
        keep_freed_memory()
    if config.qlora:
        model, tokenizer = load_4bit_model(project.base_model, device)
    else:
        model, tokenizer = load_base_model(project.base_model, on_status=log)
    shape = MatmulShape.of_model(model.config)
    precision = choose_precision(device, shape, on_status=log, alone=rank.world_size == 1)
    log(f"Device {device}, {threads} threads, {precision.name}: {precision.reason}")
    if config.replay:
        if device == "cuda" and not config.qlora:
            # Answered on the GPU that will train; Module.to() is mistyped by transformers.
            movable: Any = model
            movable.to(torch.device("cuda", rank.local_rank))
        prompts = general_prompts()
        # Every rank builds the same rows; rank 0 alone records answers it had to make.
        answers = general_answers(
            ModelPool(model, tokenizer),
            project.base_model,
            prompts,
            record=rank.is_zero,
            on_status=log,
        )
        replay = replay_rows(
            answers_for(prompts, answers, "replay"), len(train_rows), config.replay
        )
        log(
            f"Replay: {len(replay)} rows of the base model's own answers to general prompts "
            f"({len(replay)} of {len(train_rows) + len(replay)} rows)"
        )
        train_rows = train_rows + replay
    longest, longest_id = longest_row(
        train_rows + validation_rows + eval_rows, tokenizer, project.system_prompt
    )
    context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
    if context and longest > context:
        raise TrainingFailed(
            f"example {longest_id} is {longest} tokens, longer than the model's context "
            f"({context}); shorten or remove it"
        )
    max_length = longest + LENGTH_MARGIN
    log(f"Longest row: {longest} tokens (example {longest_id}); max length {max_length}")
    # A run that checks itself may stop after its first epoch; the rest only maybe.
    stops_early = bool(watched and config.eval_every)
    kind = LayerKind(
        model.config,
        bf16=precision.bf16,
        adapter=f"{config.method} r{config.lora_rank} alpha {config.lora_alpha} "
        f"dropout {config.lora_dropout} {config.target_modules}",
    )
    speed = choose_speedups(
        device,
        bf16=precision.bf16,
        lora=not config.full,
        quantized=config.qlora,
        target_modules=config.target_modules,
        scores_fit=eager_scores_fit(model.config, batch=config.batch_size, length=max_length),
        lora_layers=config.method in LORA_METHODS,
        steps=(
            min(config.max_steps, steps_per_epoch(len(train_rows), config.batch_size))
            if stops_early
            else config.max_steps
        ),
        compiled_before=kind.compiled_before,
        alone=rank.world_size == 1,
    )
    prepare_model(model, speed)
    if speed.compiled_layers:
        use_compile_cache()
        again = " (less so: this kind was compiled before)" if kind.compiled_before() else ""
        log(f"Compiling the model's layers for training: the first steps take longer{again}")
    if stop.requested and rank.world_size == 1:
        # Several ranks instead stop together at the first step's end.
        finish_run(db, run.id, "stopped", error=None)
        return "stopped"

    # Build
    peft_config = adapter_config(
        config, init_text=prompt_init_text(project), tokenizer_path=tokenizer.name_or_path
    )
    sft_args = training_arguments(
        config,
        output_dir=run_dir / "checkpoints",
        max_length=max_length,
        bf16=precision.bf16,
        device=device,
        evaluate=stops_early,
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
    strategy = read_launch(run_dir).strategy if rank.world_size > 1 else None
    keeps_best = bool(validation_rows and config.eval_every) and strategy not in SHARDED_STRATEGIES
    scorer = (
        ValidationScorer(
            validation_rows,
            project.system_prompt,
            tokenizer,
            task_labels(
                spec_labels(project.task_spec),
                [row["messages"][-1]["content"] for row in train_rows[:task_rows]],
            ),
        )
        if keeps_best
        else None
    )
    progress = StoreProgress(
        db_path,
        run.id,
        config,
        stop,
        keeps_best=keeps_best,
        metric=scorer.metric if scorer else None,
        fixed_steps=fixed_plan_steps(task_rows, len(train_rows), config.batch_size),
    )
    trainer = ValidatedTrainer(
        model=model,
        args=sft_args,
        train_dataset=Dataset.from_list(to_prompt_completion(train_rows, project.system_prompt)),
        eval_dataset=(
            Dataset.from_list(to_prompt_completion(watched, project.system_prompt))
            if watched and config.eval_every
            else None
        ),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress],
        db_path=db_path,
        run_id=run.id,
        keep=config.keep_checkpoints,
        best_step=lambda: progress.best_step,
        speed=speed,
        scorer=scorer,
    )
    check_end_of_turn_is_trained(trainer, tokenizer)
    used = {**config.to_dict(), "max_length": max_length, "threads": threads}
    used["precision"] = precision.name
    used["speedups"] = [name for name, on in asdict(speed).items() if on]
    if scorer is not None:
        used["validation_metric"] = scorer.metric or "eval_loss"
    if rank.world_size > 1:
        used.update(processes=rank.world_size, strategy=strategy)
    trained: Any = trainer.model
    trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
    if rank.is_zero:
        set_config(db, run.id, used)
        set_costs(db, run.id, trainable_parameters=trainable)
    log(f"Config: {json.dumps(used)}")
    log(f"Trainable parameters: {trainable:,}")

    # Train
    checkpoint = resumable_checkpoint(run_dir / "checkpoints", run.id) if resume else None
    resume_from = str(checkpoint) if checkpoint is not None else None
    if resume and resume_from is None:
        log("No complete checkpoint yet: starting from step 0")
    elif resume_from:
        log(f"Resuming from {resume_from}")
    trainer.train(resume_from_checkpoint=resume_from)
    if speed.compiled_layers:
        kind.mark_compiled()
    if stop.on_any_rank(sft_args.device):
        if rank.is_zero:
            finish_run(db, run.id, "stopped")
        return "stopped"

    # Save
    # Rank 0 alone writes the adapter, so it alone checks the checkpoint it copies.
    best = (
        kept_checkpoint(run_dir, run.id, progress, trainer.state.global_step)
        if rank.is_zero
        else None
    )
    adapter_dir = save_final(trainer, tokenizer, run_dir, run.id, best=best)
    if not rank.is_zero:
        return "completed"
    set_costs(db, run.id, peak_memory=peak_memory(device))
    # The best check's weights were kept: from its checkpoint, or as the last step's own.
    kept = progress.best_step if best or progress.best_step == trainer.state.global_step else None
    if keeps_best or progress.stop_reason:
        ended = outcome(trainer, progress, kept)
        log(f"Outcome: {ended}")
        set_outcome(db, run.id, best_step=kept, stop_reason=ended)
    finish_run(db, run.id, "completed", adapter_path=str(adapter_dir))

    # Evaluate, so the before/after is waiting when the user looks.
    if eval_rows:
        del trainer, model
        evaluate_unless_stopped(db_path, run.id, project.name, stop)
    return "completed"


def evaluate_unless_stopped(
    db_path: Path, run_id: int, project_name: str, stop: StopRequest
) -> None:
    """Evaluate the completed run, unless it was asked to stop: then, or on SIGTERM during
    the evaluation, end it with the adapter kept and say how to evaluate later."""
    later = f"the adapter is kept; evaluate it later: tunesmith eval {project_name} --run {run_id}"
    if stop.requested:
        log(f"Not evaluating, as asked: {later}")
        return
    log("Evaluating base and tuned on the eval rows...")
    try:
        with stop.ending_evaluation():
            result = evaluate_run(db_path, run_id)
    except EvaluationStopped:
        log(f"SIGTERM received: the evaluation stopped; {later}")
    except TunesmithError as error:
        log(f"Evaluation failed: {error.message}")
    else:
        log(f"Evaluation: base {result.base}, tuned {result.tuned}")


def prompt_init_text(project: Project) -> str:
    """The words prompt tuning's virtual tokens start from: the system prompt, else the task's
    goal, else a plain instruction."""
    goal = project.task_spec.get("goal")
    return project.system_prompt or (goal if isinstance(goal, str) and goal else DEFAULT_INIT_TEXT)


def peak_memory(device: str) -> int:
    """Peak bytes this process took: the GPU's allocations on CUDA, else its resident set."""
    if device == "cuda":
        return int(torch.cuda.max_memory_allocated())
    # Linux reports kibibytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def kept_checkpoint(
    run_dir: Path, run_id: int, progress: StoreProgress, last_step: int
) -> Path | None:
    """The best check's checkpoint, to become the adapter; None to keep the final weights
    (no checks kept, the best is the last step, or its checkpoint is gone or changed)."""
    step = progress.best_step
    if step is None or step == last_step:
        return None
    folder = run_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{step}"
    problem = checkpoint_problem(folder, run_id) if folder.is_dir() else "it is gone"
    if problem is not None:
        log(f"Keeping the last weights, not step {step}'s: {problem}")
        return None
    return folder


def outcome(trainer: SFTTrainer, progress: StoreProgress, kept: int | None) -> str:
    """Why the run ended where it did and which weights it kept (the best check's, at step
    ``kept``, else the last step's), as the log and the app say it."""
    reason = progress.stop_reason or f"trained to the ceiling of {trainer.state.max_steps} steps"
    if kept is None or progress.verdict is None:
        return f"{reason}; kept the last step's weights"
    best = progress.verdict.best
    if progress.verdict.stop:
        # The reason names the best check's measure already: add only its eval loss, if
        # the measure was a score.
        if best.score is None or best.loss is None:
            return f"{reason}; kept step {best.step}"
        return f"{reason}; kept step {best.step} (eval loss {best.loss:.4f})"
    return f"{reason}; kept step {best.step} ({check_text(best, progress.metric or '')})"


def save_final(
    trainer: SFTTrainer,
    tokenizer: PreTrainedTokenizerBase,
    run_dir: Path,
    run_id: int,
    *,
    best: Path | None = None,
) -> Path:
    """Save the adapter (or full model) and tokenizer to ``run_dir/adapter``, atomically; with
    ``best``, the weights are that checkpoint's, file for file."""
    final = run_dir / "adapter"
    staging = run_dir / ".adapter.staging"
    if not trainer.is_world_process_zero():
        # The other ranks take part in gathering sharded weights; rank 0 writes them.
        trainer.save_model(str(staging))
        return final
    shutil.rmtree(staging, ignore_errors=True)
    try:
        trainer.save_model(str(staging))
        if best is not None:
            for source in best.iterdir():
                if source.name.endswith(KEPT_WEIGHT_FILES):
                    shutil.copyfile(source, staging / source.name)
            log(f"Kept {best.name} as the adapter: the best validation check")
        tokenizer.save_pretrained(str(staging))
    except Exception as error:
        checkpoints = run_dir / "checkpoints"
        drop_staging(
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
    publish_folder(staging, final)
    return final


if __name__ == "__main__":
    sys.exit(main())
