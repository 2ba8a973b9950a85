"""The adaptation methods: each is planned with its reasons, trains only its own weights,
resumes from a checkpoint, and answers next to the untouched base model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.reliability.harness import tiny_project, wait_for
from trainer.control.config import check_setting, plan_run, stored_method
from trainer.control.jobs import plan_for_project, resume_run, start_run, stop_run
from trainer.control.launch import BASE_MODEL_NAME
from trainer.models import load_base_model
from trainer.serving.inference import ModelPool
from trainer.training.arguments import lora_config


def test_each_method_is_planned_with_its_reason() -> None:
    lora = plan_run(40, 10).config
    assert (lora.method, lora.lora_rank, lora.lora_alpha) == ("lora", 16, 32)
    dora = plan_run(40, 10, {"method": "dora"})
    assert dora.reasons["method"].endswith("each step costs more")
    peft_config = lora_config(dora.config)
    assert peft_config is not None and peft_config.use_dora and not peft_config.use_rslora
    # rsLoRA's scale alpha / sqrt(rank) is LoRA's 2 at rank 16, and stays put as rank grows.
    rslora = plan_run(40, 10, {"method": "rslora", "lora_rank": 64}).config
    assert (rslora.lora_rank, rslora.lora_alpha) == (64, 8)
    peft_config = lora_config(rslora)
    assert peft_config is not None and peft_config.use_rslora and not peft_config.use_dora
    assert plan_run(40, 10, {"lora_rank": 64}).config.lora_alpha == 128
    full = plan_run(40, 10, {"method": "full"})
    assert full.config.full and full.config.learning_rate == 5e-5
    assert lora_config(full.config) is None
    with pytest.raises(ValueError, match="method: use one of lora, dora, rslora, full"):
        plan_run(40, 10, {"method": "prefix"})
    with pytest.raises(ValueError, match="one of lora"):
        check_setting("method", "LoRA")


def test_a_run_stored_before_methods_keeps_its_kind() -> None:
    assert stored_method({"full": True}) == "full"
    assert stored_method({"full": False}) == stored_method({}) == "lora"
    assert stored_method({"method": "dora", "full": False}) == "dora"


def _logits(model: torch.nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits: torch.Tensor = model(input_ids=input_ids).logits
    return logits


@pytest.mark.parametrize("method", ["dora", "rslora", "full"])
def test_each_method_trains_its_own_weights_resumes_and_answers_next_to_base(
    tmp_path: Path, tiny_model_dir: Path, method: str
) -> None:
    db_path = tmp_path / "t.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    settings = {"method": method, "max_steps": 40, "save_every": 4, "batch_size": 4}
    run = start_run(db, db_path, project, plan_for_project(db, project, settings))
    wait_for(db, run.id, lambda r: (r.checkpoint_step or 0) >= 4, "a checkpoint")
    stop_run(db, run.id)
    stopped = wait_for(db, run.id, lambda r: r.status == "stopped", "the stop")
    assert 4 <= (stopped.checkpoint_step or 0) < 40
    resume_run(db, db_path, run.id)
    done = wait_for(db, run.id, lambda r: r.status == "completed", "the resumed run's end")
    assert done.current_step == 40 and done.config["method"] == method

    tuned_dir = Path(done.adapter_path or "")
    if method == "full":
        # Every weight trained: the run keeps a whole model, and no adapter.
        assert not (tuned_dir / "adapter_config.json").exists()
        trained = load_file(str(tuned_dir / "model.safetensors"))
        base_weights = load_file(str(tiny_model_dir / "model.safetensors"))
        assert trained.keys() == base_weights.keys()
        assert any(not torch.equal(trained[name], base_weights[name]) for name in trained)
    else:
        config = json.loads((tuned_dir / "adapter_config.json").read_text())
        assert (config["use_dora"], config["use_rslora"]) == (
            method == "dora",
            method == "rslora",
        )
        tensors = load_file(str(tuned_dir / "adapter_model.safetensors"))
        # Only the adapter's own weights are saved: LoRA's pairs, and DoRA's magnitudes.
        assert all(".lora_" in name for name in tensors)
        magnitudes = [name for name in tensors if "lora_magnitude_vector" in name]
        assert bool(magnitudes) == (method == "dora")
        assert any(t.abs().sum() > 0 for name, t in tensors.items() if "lora_B" in name)

    # Served beside the base model, which answers as it did before.
    model, tokenizer = load_base_model(str(tiny_model_dir), on_status=lambda message: None)
    prompt = tokenizer("Name colour number 3.", return_tensors="pt")["input_ids"]
    before = _logits(model, prompt)
    pool = ModelPool(model, tokenizer)
    pool.attach("tuned", tuned_dir)
    with pool.selected(BASE_MODEL_NAME) as base:
        torch.testing.assert_close(_logits(base, prompt), before)
    with pool.selected("tuned") as tuned:
        assert not torch.allclose(_logits(tuned, prompt), before)
