"""The run's guards: a non-finite loss fails the run at its step; the end-of-turn token must be
trained; the step count and checkpoints follow the plan."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerBase,
    TrainerControl,
    TrainerState,
)
from trl import SFTConfig, SFTTrainer

from store.database import open_database
from store.examples import messages_to_json
from store.projects import create_project
from store.runs import create_run, metrics
from tests.conftest import tiny_task_rows
from trainer.control.config import plan_run
from trainer.training.callbacks import StopRequest, StoreProgress
from trainer.training.data import check_end_of_turn_is_trained, to_prompt_completion
from trainer.training.reporting import TrainingFailed
from trainer.training.run import outcome


@pytest.mark.parametrize("bad_loss", [math.nan, math.inf])
def test_non_finite_loss_fails_the_run_at_that_step(tmp_path: Path, bad_loss: float) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "p")
    run = create_run(
        db, project.id, config={}, dataset_hash="x", dataset_size=1, runs_root=tmp_path
    )
    progress = StoreProgress(db_path, run.id, plan_run(8, 0).config, StopRequest())
    state = TrainerState(max_steps=10)
    control = TrainerControl()
    state.global_step = 3
    progress.on_log(None, state, control, logs={"loss": 0.5})  # type: ignore[arg-type]
    state.global_step = 4
    with pytest.raises(TrainingFailed, match=f"the loss became {bad_loss} at step 4"):
        progress.on_log(None, state, control, logs={"loss": bad_loss})  # type: ignore[arg-type]
    assert [m.step for _, m in metrics(db, run.id)] == [3]


def test_a_resumed_run_goes_on_from_its_checks_so_far(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "p")
    run = create_run(
        db, project.id, config={}, dataset_hash="x", dataset_size=1, runs_root=tmp_path
    )
    config = plan_run(80, 20).config
    progress = StoreProgress(
        db_path, run.id, config, StopRequest(), keeps_best=True, metric="exact_match"
    )
    # The state a checkpoint at step 6 restores: its log history holds the checks before it.
    state = TrainerState(max_steps=40)
    state.global_step = 6
    state.log_history = [
        {"loss": 1.2, "step": 1},
        {"eval_loss": 0.5, "eval_validation_score": 0.5, "step": 2, "epoch": 0.5},
        {"eval_loss": 0.4, "eval_validation_score": 0.75, "step": 4, "epoch": 1.0},
        {"eval_loss": 0.45, "eval_validation_score": 0.5, "step": 6, "epoch": 1.5},
    ]
    control = TrainerControl()
    progress.on_train_begin(None, state, control)  # type: ignore[arg-type]
    assert progress.best_step == 4
    assert progress.verdict is not None and progress.verdict.stale == 1
    # The count goes on across the resume: two more checks no better, and it stops.
    for step in (8, 10):
        state.global_step, state.epoch = step, step / 4
        metrics_now = {"eval_loss": 0.46, "eval_validation_score": 0.625}
        progress.on_evaluate(None, state, control, metrics=metrics_now)  # type: ignore[arg-type]
    assert control.should_training_stop and progress.best_step == 4
    assert progress.stop_reason == "validation exact match 0.75, no better for 3 checks"
    # The outcome names the score once, then the kept step's tie-breaker.
    assert outcome(SimpleNamespace(state=state), progress, kept=4) == (  # type: ignore[arg-type]
        "validation exact match 0.75, no better for 3 checks; kept step 4 (eval loss 0.4000)"
    )


@pytest.mark.parametrize(("trained_before", "stops"), [(0.0, False), (100.0, True)])
def test_a_resumed_run_spends_only_what_is_left_of_its_budget(
    tmp_path: Path, trained_before: float, stops: bool
) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "p")
    run = create_run(
        db, project.id, config={}, dataset_hash="x", dataset_size=1, runs_root=tmp_path
    )
    config = plan_run(8, 0, {"budget_seconds": 60}).config
    progress = StoreProgress(db_path, run.id, config, StopRequest())
    args = SimpleNamespace(device="cpu")
    # The state a checkpoint at step 6 restores, after 0 s or 100 s of training before it.
    state = TrainerState(max_steps=40)
    state.global_step = 6
    state.log_history = [{"loss": 1.0, "step": 6, "trained_seconds": trained_before}]
    control = TrainerControl()
    progress.on_train_begin(args, state, control)  # type: ignore[arg-type]
    state.global_step = 7
    progress.on_step_end(args, state, control)  # type: ignore[arg-type]
    assert control.should_training_stop is stops
    assert (progress.stop_reason == "the 1m00s budget ran out at step 7") is stops
    # Each logged step records the time so far, for the next resume to restore.
    state.log_history.append({"loss": 0.9, "step": 7})
    progress.on_log(args, state, control, logs={"loss": 0.9})  # type: ignore[arg-type]
    assert trained_before <= state.log_history[-1]["trained_seconds"] < trained_before + 30


def _trainer(model_dir: Path, tokenizer: PreTrainedTokenizerBase, tmp_path: Path) -> SFTTrainer:
    rows = [{"messages": messages_to_json(e.messages)} for e in tiny_task_rows(4)]
    return SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=SFTConfig(
            output_dir=str(tmp_path / "out"),
            per_device_train_batch_size=4,
            report_to=[],
            use_cpu=True,
            completion_only_loss=True,
        ),
        train_dataset=Dataset.from_list(to_prompt_completion(rows, "Answer in one word.")),
        processing_class=tokenizer,
    )


def test_end_of_turn_token_is_trained(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    # pad == eos here: the classic trap this check guards against.
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    check_end_of_turn_is_trained(_trainer(tiny_model_dir, tokenizer, tmp_path), tokenizer)


def test_untrained_end_of_turn_token_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    # An eos the chat template never writes: no row would teach the model to stop.
    tokenizer.eos_token = "<|endoftext|>"
    trainer = _trainer(tiny_model_dir, tokenizer, tmp_path)
    with pytest.raises(TrainingFailed, match="not in the trained labels"):
        check_end_of_turn_is_trained(trainer, tokenizer)


def test_system_prompt_is_added_only_where_missing() -> None:
    rows = [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {
            "messages": [
                {"role": "system", "content": "own"},
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "a"},
            ]
        },
    ]
    converted = to_prompt_completion(rows, "project prompt")
    assert converted[0]["prompt"][0] == {"role": "system", "content": "project prompt"}
    assert converted[1]["prompt"][0] == {"role": "system", "content": "own"}
    assert all(row["completion"] == [{"role": "assistant", "content": "a"}] for row in converted)
