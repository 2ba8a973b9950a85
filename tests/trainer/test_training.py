"""Training runs of the tiny model: what they change, what they record, how they end."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from store.database import open_database
from store.evals import evaluation_items, latest_evaluation
from store.examples import add_examples
from store.projects import create_project
from store.runs import get_run, metrics
from tests.conftest import TinyRun, tiny_task_rows, train_to_the_end
from tests.reliability.harness import tiny_project
from trainer.control.jobs import plan_for_project, prepare_run
from trainer.control.stopping import Check, check_text, judge


def test_completed_run_records_progress_and_evaluates(completed_tiny_run: TinyRun) -> None:
    db = open_database(completed_tiny_run.db_path)
    run = get_run(db, completed_tiny_run.run_id)
    assert run.status == "completed", run.error
    assert run.current_step == run.max_steps == 6
    assert run.dataset_size == 16
    assert run.dataset_hash and len(run.dataset_hash) == 64
    rows = [metric for _, metric in metrics(db, run.id)]
    train_rows = [m for m in rows if m.loss is not None]
    assert [m.step for m in train_rows] == [1, 2, 3, 4, 5, 6]
    assert all(m.learning_rate is not None and m.grad_norm is not None for m in train_rows)
    assert any(m.tokens_per_second for m in train_rows)
    assert train_rows[-1].eta_seconds == 0
    assert run.adapter_path is not None
    adapter = Path(run.adapter_path)
    assert sorted(p.name for p in adapter.iterdir() if p.suffix in (".json", ".safetensors")) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert not list(adapter.glob("*.bin")), "no pickle next to the adapter"
    evaluation = latest_evaluation(db, run.id)
    assert evaluation is not None
    assert evaluation.n == 4
    assert set(evaluation.base) == set(evaluation.tuned) >= {"exact_match", "token_f1"}
    items = evaluation_items(db, evaluation.id)
    assert [item.reference for item in items] == ["red", "green", "blue", "black"]


def test_adapter_learned_and_base_weights_untouched(
    completed_tiny_run: TinyRun, tiny_model_dir: Path
) -> None:
    from safetensors.torch import load_file

    db = open_database(completed_tiny_run.db_path)
    run = get_run(db, completed_tiny_run.run_id)
    assert run.adapter_path is not None
    adapter = load_file(str(Path(run.adapter_path) / "adapter_model.safetensors"))
    assert adapter, "the adapter holds weights"
    assert all("lora_" in name for name in adapter), "only LoRA weights, no copy of the base"
    lora_b = [tensor for name, tensor in adapter.items() if "lora_B" in name]
    # LoRA starts with B = 0: a non-zero B means training moved the adapter.
    assert lora_b and any(tensor.abs().sum() > 0 for tensor in lora_b)
    base_before = load_file(str(tiny_model_dir / "model.safetensors"))
    checkpoint = sorted((Path(run.run_dir or "") / "checkpoints").glob("checkpoint-*"))[-1]
    assert not list(checkpoint.glob("model*.safetensors")), "a LoRA checkpoint stores no base"
    assert base_before, "the base model file is intact"


def test_run_config_records_what_was_used(completed_tiny_run: TinyRun) -> None:
    db = open_database(completed_tiny_run.db_path)
    config = get_run(db, completed_tiny_run.run_id).config
    assert config["max_steps"] == 6
    assert config["batch_size"] == 4
    assert config["max_length"] > 0
    assert config["threads"] >= 1
    assert config["precision"] in ("bf16", "fp32")


def test_a_large_train_split_validates_on_its_own_rows_and_keeps_the_best_checkpoint(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    db_path = tmp_path / "tunesmith.db"
    db = open_database(db_path)
    project = create_project(db, "colours", base_model=str(tiny_model_dir))
    add_examples(db, project.id, tiny_task_rows(70), source="imported", split_mode="train")
    add_examples(db, project.id, tiny_task_rows(74)[70:], source="imported", split_mode="eval")
    # A check every 2 steps to the ceiling, and one checkpoint kept besides the best.
    settings = {"batch_size": 4, "eval_every": 2, "keep_checkpoints": 1}
    plan = plan_for_project(
        db, project, {**settings, "max_steps": 8, "early_stopping_patience": 100}
    )
    run = prepare_run(db, project, plan)
    done = train_to_the_end(db_path, run.id)
    run = get_run(db, run.id)
    assert run.status == "completed" and run.dataset_size == 62
    log = done.stdout + done.stderr
    assert "Validation: 8 rows carved from the train rows give the eval loss" in log
    # Each check scored the validation rows' greedy answers (a label task: exact match).
    checks = [
        Check(m.step, m.epoch or 0.0, m.validation_score, m.eval_loss)
        for _, m in metrics(db, run.id)
        if m.eval_loss is not None
    ]
    assert [check.step for check in checks] == [2, 4, 6, 8]
    assert all(check.score is not None and 0 <= check.score <= 1 for check in checks)
    assert run.config["validation_metric"] == "exact_match"
    # The adapter is the best check's checkpoint, file for file, and that checkpoint outlived
    # the rotation that keeps only the newest other one.
    best = judge(checks, patience=100).best
    assert run.best_step == best.step
    assert run.stop_reason == (
        f"trained to the ceiling of 8 steps; kept step {best.step}"
        f" ({check_text(best, 'exact_match')})"
    )
    checkpoint = Path(run.run_dir or "") / "checkpoints" / f"checkpoint-{best.step}"
    adapter = Path(run.adapter_path or "")
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (adapter / name).read_bytes() == (checkpoint / name).read_bytes()
    kept = sorted(path.name for path in checkpoint.parent.glob("checkpoint-*"))
    assert kept == sorted({"checkpoint-8", f"checkpoint-{best.step}"})
    # The final test is the eval split, which neither trained nor picked the checkpoint.
    evaluation = latest_evaluation(db, run.id)
    assert evaluation is not None and evaluation.n == 4


def test_a_run_stops_within_its_budget_and_says_so(tmp_path: Path, tiny_model_dir: Path) -> None:
    db_path = tmp_path / "tunesmith.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    plan = plan_for_project(
        db, project, {"max_steps": 100_000, "batch_size": 4, "budget_seconds": 3}
    )
    run = prepare_run(db, project, plan)
    train_to_the_end(db_path, run.id)
    run = get_run(db, run.id)
    assert run.status == "completed" and 0 < run.current_step < 100_000
    assert run.stop_reason == (
        f"the 3s budget ran out at step {run.current_step}; kept the last step's weights"
    )
    steps = [m for _, m in metrics(db, run.id) if m.loss is not None]
    spent = datetime.fromisoformat(steps[-1].recorded_at) - datetime.fromisoformat(
        steps[0].recorded_at
    )
    assert spent.total_seconds() <= 3
    # The ETA counted down to the budget's end, not to the 100,000th step.
    assert all(m.eta_seconds is None or m.eta_seconds <= 3 for m in steps)
