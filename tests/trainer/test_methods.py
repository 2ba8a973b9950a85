"""The adaptation methods: each is planned with its reasons, trains only its own weights,
resumes from a checkpoint, and answers next to the untouched base model."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from peft import IA3Config, LoraConfig, PromptTuningConfig
from safetensors.torch import load_file

from store.errors import InputError
from store.examples import add_examples, unlabeled_example
from tests.reliability.harness import tiny_project, wait_for
from trainer.control.config import check_setting, plan_run, stored_method
from trainer.control.jobs import plan_for_project, resume_run, start_run, stop_run
from trainer.control.launch import BASE_MODEL_NAME
from trainer.export import export_run
from trainer.labelling import label_project
from trainer.models import load_base_model
from trainer.serving.inference import ModelPool
from trainer.training.arguments import adapter_config


def test_each_method_is_planned_with_its_reason() -> None:
    lora = plan_run(40, 10).config
    assert (lora.method, lora.lora_rank, lora.lora_alpha) == ("lora", 16, 32)
    dora = plan_run(40, 10, {"method": "dora"})
    assert dora.reasons["method"].endswith("each step costs more")
    peft_config = adapter_config(dora.config)
    assert isinstance(peft_config, LoraConfig)
    assert peft_config.use_dora and not peft_config.use_rslora
    # rsLoRA's scale alpha / sqrt(rank) is LoRA's 2 at rank 16, and stays put as rank grows.
    rslora = plan_run(40, 10, {"method": "rslora", "lora_rank": 64}).config
    assert (rslora.lora_rank, rslora.lora_alpha) == (64, 8)
    peft_config = adapter_config(rslora)
    assert isinstance(peft_config, LoraConfig)
    assert peft_config.use_rslora and not peft_config.use_dora
    assert plan_run(40, 10, {"lora_rank": 64}).config.lora_alpha == 128
    full = plan_run(40, 10, {"method": "full"})
    assert full.config.full and full.config.learning_rate == 5e-5
    assert adapter_config(full.config) is None
    ia3 = plan_run(40, 10, {"method": "ia3"})
    assert ia3.reasons["method"].endswith("it merges into the model")
    assert ia3.config.learning_rate == 1e-2 and "lora_rank" not in ia3.reasons
    assert isinstance(adapter_config(ia3.config), IA3Config)
    prompt = plan_run(40, 10, {"method": "prompt-tuning"})
    assert "learned tokens before every prompt" in prompt.reasons["method"]
    assert prompt.config.learning_rate == 3e-2 and "virtual_tokens" in prompt.reasons
    peft_config = adapter_config(prompt.config, init_text="Route tickets.", tokenizer_path="t")
    assert isinstance(peft_config, PromptTuningConfig)
    assert peft_config.num_virtual_tokens == 16
    assert peft_config.prompt_tuning_init_text == "Route tickets."
    with pytest.raises(
        ValueError, match="method: use one of lora, dora, rslora, ia3, prompt-tuning, full"
    ):
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


@pytest.mark.parametrize("method", ["dora", "rslora", "ia3", "prompt-tuning", "full"])
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
        tensors = load_file(str(tuned_dir / "adapter_model.safetensors"))
        assert done.trainable_parameters == sum(t.numel() for t in tensors.values())
        if method == "ia3":
            assert config["peft_type"] == "IA3"
            # One scale per channel of keys, values and the MLP's down projection, moved off 1.
            assert tensors and all(".ia3_l" in name for name in tensors)
            assert any(not torch.equal(t, torch.ones_like(t)) for t in tensors.values())
        elif method == "prompt-tuning":
            assert config["peft_type"] == "PROMPT_TUNING"
            assert list(tensors) == ["prompt_embeddings"]
            assert tensors["prompt_embeddings"].shape[0] == config["num_virtual_tokens"]
        else:
            assert (config["use_dora"], config["use_rslora"]) == (
                method == "dora",
                method == "rslora",
            )
            # Only the adapter's own weights are saved: LoRA's pairs, and DoRA's magnitudes.
            assert all(".lora_" in name for name in tensors)
            magnitudes = [name for name in tensors if "lora_magnitude_vector" in name]
            assert bool(magnitudes) == (method == "dora")
            assert any(t.abs().sum() > 0 for name, t in tensors.items() if "lora_B" in name)
    assert (done.peak_memory or 0) > 0

    # Served beside the base model, which answers as it did before.
    model, tokenizer = load_base_model(str(tiny_model_dir), on_status=lambda message: None)
    prompt = tokenizer("Name colour number 3.", return_tensors="pt")["input_ids"]
    before = _logits(model, prompt)
    pool = ModelPool(model, tokenizer)
    pool.attach("tuned", tuned_dir)
    with pool.selected(BASE_MODEL_NAME) as base:
        torch.testing.assert_close(_logits(base, prompt), before)
    with pool.selected("tuned") as tuned:
        # Prompt tuning's logits start with its virtual tokens'.
        tuned_logits = _logits(tuned, prompt)[:, pool.virtual_tokens("tuned") :]
        assert tuned_logits.shape == before.shape
        assert not torch.allclose(tuned_logits, before)
    # Greedy generation answers what reading the answer back token by token predicts (peft's
    # own generate drifts for prompt tuning; the pool's must not).
    conversation = [{"role": "user", "content": "Name colour 3."}]
    answer = pool.generate("tuned", [conversation], max_new_tokens=6)[0]
    ids = pool.encode([conversation])["input_ids"]
    prompt_length = ids.shape[1]
    with pool.selected("tuned") as tuned:
        for _ in range(6):
            following = _logits(tuned, ids)[0, -1].argmax().view(1, 1)
            ids = torch.cat([ids, following], dim=1)
            if int(following) in pool.eos_token_ids:
                break
    greedy = str(tokenizer.decode(ids[0, prompt_length:], skip_special_tokens=True))
    assert answer == greedy.strip()

    # Each method leaves only as its weights allow, and a refusal says why in one line.
    def export(*, merged: bool = False, gguf_adapter: bool = False) -> None:
        export_run(
            db_path,
            run.id,
            tmp_path / "out",
            merged=merged,
            gguf_adapter=gguf_adapter,
            force=True,
            on_status=print,
        )

    if method in ("ia3", "prompt-tuning"):
        with pytest.raises(InputError, match=f"run {run.id} is (an IA3|prompt tuning)"):
            export(gguf_adapter=True)
    if method == "prompt-tuning":
        with pytest.raises(InputError, match="no weights to merge"):
            export(merged=True)
        export()
        assert json.loads((tmp_path / "out" / "adapter_config.json").read_text())["peft_type"]
        # The labeller reuses caches the learned tokens cannot come before: refused, plainly.
        unlabeled = [unlabeled_example("Name colour 9.")]
        add_examples(db, project.id, unlabeled, source="imported", status="pending")
        with pytest.raises(InputError, match="trained with prompt tuning, which cannot label"):
            label_project(
                db_path, "colours", run_id=run.id, labels=[], limit=None, again=False,
                stop=threading.Event(),
            )  # fmt: skip
    elif method == "ia3":
        export(merged=True)
        assert not (tmp_path / "out" / "adapter_config.json").exists()
