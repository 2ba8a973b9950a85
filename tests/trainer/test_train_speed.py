"""Training speedups: the completion-only LM head matches TRL's, bf16 base weights keep LoRA in
fp32, and which speedups a machine gets."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import Dataset
from peft.helpers import disable_input_dtype_casting
from peft.tuners.lora import LoraLayer
from torch._dynamo.utils import counters
from torch._inductor.runtime.cache_dir_utils import default_cache_dir
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
from trl.kernels import ChunkedLogProbFunction

import trainer.training.completion_head
from store.examples import messages_to_json
from store.runs import get_run
from tests.conftest import tiny_task_rows, train_to_the_end
from tests.reliability.harness import tiny_project
from trainer.control.config import plan_run
from trainer.control.jobs import plan_for_project, prepare_run
from trainer.training.arguments import adapter_config, prepare_model, training_arguments
from trainer.training.compiled_layers import (
    CACHE_ENV,
    MARKERS_DIRNAME,
    LayerKind,
    use_compile_cache,
)
from trainer.training.completion_head import FastSFTTrainer
from trainer.training.cpu_attention import AttentionFunction
from trainer.training.data import to_prompt_completion
from trainer.training.hardware import (
    COMPILE_MIN_STEPS,
    COMPILE_MIN_STEPS_WARM,
    Speedups,
    activations_fit,
    choose_speedups,
    compiler_found,
    eager_scores_fit,
)

CPU_SPEED = Speedups(
    bf16_weights=False,
    completion_head=True,
    fused_optimizer=False,
    flash_attention=False,
    liger=False,
    folded_lora=True,
    fused_norms=True,
)


def _rows() -> list[dict[str, Any]]:
    rows = [{"messages": messages_to_json(e.messages)} for e in tiny_task_rows(8)]
    return to_prompt_completion(rows, None)


def _trainer(
    model_dir: Path, tmp_path: Path, speed: Speedups | None, bf16: bool, method: str = "lora"
) -> SFTTrainer:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    arguments = SFTConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=8,
        completion_only_loss=True,
        bf16=bf16,
        use_cpu=True,
        report_to=[],
        activation_checkpointing=False,
    )
    common: dict[str, Any] = {
        "model": model,
        "args": arguments,
        "train_dataset": Dataset.from_list(_rows()),
        "processing_class": AutoTokenizer.from_pretrained(model_dir),
        "peft_config": adapter_config(
            plan_run(8, 0, {"method": method}).config,
            init_text="Name the colour.",
            tokenizer_path=str(model_dir),
        ),
    }
    # The same seed gives both trainers the same LoRA initialisation.
    torch.manual_seed(0)
    if speed is None:
        return SFTTrainer(**common)
    prepare_model(model, speed)
    return FastSFTTrainer(**common, speed=speed)


def _loss_and_grads(
    sft: Any, batch: dict[str, torch.Tensor]
) -> tuple[float, dict[str, torch.Tensor], dict[str, float]]:
    sft.model.train()
    loss = sft.compute_loss(sft.model, dict(batch))
    loss.backward()
    grads = {
        name: param.grad.clone()
        for name, param in sft.model.named_parameters()
        if param.requires_grad and param.grad is not None
    }
    metrics = {name: values[-1] for name, values in sft._metrics["train"].items()}
    return loss.item(), grads, metrics


@pytest.mark.parametrize("plain", [True, False], ids=["kept softmax", "chunked kernel"])
def test_completion_head_gives_trls_loss_gradients_and_metrics(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plain: bool
) -> None:
    projected: list[int] = []
    kernel: Any = ChunkedLogProbFunction
    scores: Any = trainer.training.completion_head.HeadScores.apply

    class Recording:
        @staticmethod
        def apply(hidden: torch.Tensor, *args: Any) -> Any:
            projected.append(hidden.shape[0])
            return kernel.apply(hidden, *args)

    def recording_scores(rows: torch.Tensor, *args: Any) -> Any:
        projected.append(rows.shape[0])
        return scores(rows, *args)

    if plain:
        monkeypatch.setattr(trainer.training.completion_head.HeadScores, "apply", recording_scores)
    else:
        # Past the size plain autograd takes, TRL's chunked kernel scores the rows.
        monkeypatch.setattr(trainer.training.completion_head, "PLAIN_HEAD_ELEMENTS", 0)
        monkeypatch.setattr(trainer.training.completion_head, "ChunkedLogProbFunction", Recording)
    reference = _trainer(tiny_model_dir, tmp_path, None, bf16=False)
    fast = _trainer(tiny_model_dir, tmp_path, CPU_SPEED, bf16=False)
    batch = next(iter(reference.get_train_dataloader()))

    loss, grads, metrics = _loss_and_grads(reference, batch)
    fast_loss, fast_grads, fast_metrics = _loss_and_grads(fast, batch)

    trained = int((batch["labels"][:, 1:] != -100).sum())
    assert projected == [trained]
    assert trained < batch["labels"][:, 1:].numel() / 2
    assert fast_loss == pytest.approx(loss, rel=1e-5)
    assert grads.keys() == fast_grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6)
    assert fast_metrics.keys() == metrics.keys() >= {"num_tokens", "mean_token_accuracy", "entropy"}
    for name, value in metrics.items():
        assert fast_metrics[name] == pytest.approx(value, rel=1e-4), name
    # Every LoRA layer ran the folded forward, every norm the fused one.
    model: Any = fast.model
    folded = [m for m in model.modules() if isinstance(m, LoraLayer)]
    assert folded and all("forward" in vars(m) for m in folded)
    norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
    assert len(norms) == 5 and all("forward" in vars(m) for m in norms)


def _plain_head_scores(
    rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What ``HeadScores`` computes, by plain autograd in fp32."""
    logits = torch.nn.functional.linear(rows.float(), weight.float(), bias)
    log_softmax = torch.log_softmax(logits.float(), dim=-1)
    entropy = -(log_softmax.exp() * log_softmax).sum(-1)
    is_top1 = log_softmax.argmax(-1) == targets
    return log_softmax.gather(-1, targets[:, None]).squeeze(-1), entropy.detach(), is_top1


@pytest.mark.parametrize(
    ("dtype", "autocast", "tolerance"),
    [
        (torch.float32, False, 1e-5),
        (torch.bfloat16, True, 2e-2),
        # A full fine-tune under autocast: fp32 rows and weight, bf16 logits.
        (torch.float32, True, 2e-2),
    ],
    ids=["fp32", "bf16", "fp32 under bf16 autocast"],
)
def test_head_scores_match_plain_autograd_over_uneven_chunks(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, autocast: bool, tolerance: float
) -> None:
    # 3 rows a chunk: 10 rows make chunks of 3, 3, 3 and 1.
    monkeypatch.setattr(trainer.training.completion_head, "HEAD_CHUNK_ELEMENTS", 3 * 97 + 5)
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(10, 16, generator=generator).to(dtype)
    weight = torch.randn(97, 16, generator=generator).to(dtype)
    bias = torch.randn(97, generator=generator).to(dtype)
    targets = torch.randint(0, 97, (10,), generator=generator)
    # A row whose target is already near certain: its 1 - p must survive bf16.
    weight.data[targets[0]] = rows[0] * 2
    fast_scores: Any = trainer.training.completion_head.HeadScores.apply
    results: list[list[torch.Tensor]] = []
    for scores in (fast_scores, _plain_head_scores):
        inputs = [tensor.clone().requires_grad_() for tensor in (rows, weight, bias)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            log_probs, entropy, is_top1 = scores(inputs[0], inputs[1], inputs[2], targets)
        (log_probs * torch.linspace(-1, 1, 10)).sum().backward()
        grads = [tensor.grad for tensor in inputs if tensor.grad is not None]
        assert [grad.dtype for grad in grads] == [dtype] * 3
        results.append([log_probs.detach(), entropy, is_top1, *grads])
    fast, plain = results
    assert plain[0][0] > -0.01
    torch.testing.assert_close(fast[2], plain[2])
    for got, expected in zip(fast[:2] + fast[3:], plain[:2] + plain[3:], strict=True):
        torch.testing.assert_close(got.float(), expected.float(), rtol=tolerance, atol=tolerance)


def test_bf16_base_weights_keep_lora_in_fp32(tiny_model_dir: Path, tmp_path: Path) -> None:
    speed = Speedups(
        bf16_weights=True,
        completion_head=True,
        fused_optimizer=False,
        flash_attention=False,
        liger=False,
    )
    fast: Any = _trainer(tiny_model_dir, tmp_path, speed, bf16=True)
    dtypes = {(p.requires_grad, p.dtype) for p in fast.model.parameters()}
    assert dtypes == {(True, torch.float32), (False, torch.bfloat16)}
    batch = next(iter(fast.get_train_dataloader()))
    with fast.compute_loss_context_manager(), fast.autocast_smart_context_manager():
        loss = fast.compute_loss(fast.model, dict(batch))
    assert torch.isfinite(loss)


def test_a_bf16_step_skips_peft_s_input_cast_and_restores_it_after(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    speed = replace(CPU_SPEED, bf16_weights=True)
    fast: Any = _trainer(tiny_model_dir, tmp_path, speed, bf16=True)
    batch = dict(next(iter(fast.get_train_dataloader())))
    layers: list[Any] = [m for m in fast.model.modules() if isinstance(m, LoraLayer)]
    seen: list[bool] = []
    layers[0].register_forward_pre_hook(lambda m, a: seen.append(m.cast_input_dtype_enabled))
    fast.train()
    assert seen and not any(seen)
    # Generation runs without autocast: its fp32 adapter needs the cast back.
    assert all(layer.cast_input_dtype_enabled for layer in layers)
    # Under the autocast accelerate wraps a run's forward in, the cast changed nothing: bf16
    # to fp32 and back is exact.
    losses = []
    for active in (False, True):
        with (
            torch.no_grad(),
            disable_input_dtype_casting(fast.model, active=active),
            torch.autocast("cpu", dtype=torch.bfloat16),
        ):
            losses.append(fast.compute_loss(fast.model, batch).item())
    assert losses[0] == losses[1]


@pytest.mark.parametrize("method", ["ia3", "prompt-tuning"])
def test_adapters_without_lora_layers_train_a_bf16_step(
    tiny_model_dir: Path, tmp_path: Path, method: str
) -> None:
    # peft's switch of the input cast exists on LoRA layers only.
    speed = replace(CPU_SPEED, bf16_weights=True)
    fast: Any = _trainer(tiny_model_dir, tmp_path, speed, bf16=True, method=method)
    fast.args.max_steps = 1
    assert fast.train().training_loss > 0


def test_eager_attention_gives_sdpa_s_loss_and_is_chosen_for_short_rows_on_a_cpu(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager = replace(CPU_SPEED, eager_attention=True)
    fast: Any = _trainer(tiny_model_dir, tmp_path, eager, bf16=False)
    plain: Any = _trainer(tiny_model_dir, tmp_path, CPU_SPEED, bf16=False)
    assert fast.model.config._attn_implementation == "tunesmith_cpu"
    assert plain.model.config._attn_implementation == "sdpa"
    calls: list[int] = []
    apply: Any = AttentionFunction.apply

    def counted(*args: Any) -> Any:
        calls.append(1)
        return apply(*args)

    monkeypatch.setattr(AttentionFunction, "apply", counted)
    batch = next(iter(plain.get_train_dataloader()))
    loss, grads, _ = _loss_and_grads(plain, batch)
    eager_loss, eager_grads, _ = _loss_and_grads(fast, batch)
    # Each of the tiny model's 2 layers ran the one function, not eager's fallback.
    assert len(calls) == 2
    assert eager_loss == pytest.approx(loss, rel=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(eager_grads[name], grad, rtol=1e-3, atol=1e-5)
    # What a run saves names no implementation another process lacks.
    fast.model.save_pretrained(tmp_path / "saved")
    assert "tunesmith_cpu" not in "".join(
        path.read_text() for path in (tmp_path / "saved").glob("*.json")
    )
    # The 135M model's 30 layers and 9 heads: the demo's rows (126 tokens) fit, 1024 do not.
    config = AutoModelForCausalLM.from_pretrained(tiny_model_dir).config
    config.num_hidden_layers, config.num_attention_heads = 30, 9
    assert eager_scores_fit(config, batch=8, length=130)
    assert not eager_scores_fit(config, batch=8, length=1024)
    for device, fit, chosen in (("cpu", True, True), ("cpu", False, False), ("cuda", True, False)):
        speed = choose_speedups(
            device,
            bf16=False,
            lora=True,
            quantized=False,
            target_modules="all-linear",
            scores_fit=fit,
        )
        assert speed.eager_attention is chosen


def test_cpu_gets_bf16_weights_the_completion_head_and_the_lora_fold() -> None:
    def everything(package: str) -> bool:
        return True

    speed = choose_speedups(
        "cpu",
        bf16=True,
        lora=True,
        quantized=False,
        target_modules="all-linear",
        installed=everything,
    )
    assert speed == Speedups(
        bf16_weights=True,
        completion_head=True,
        fused_optimizer=False,
        flash_attention=False,
        liger=False,
        folded_lora=True,
        fused_norms=True,
    )


@pytest.mark.parametrize(
    ("lora", "quantized", "bf16"), [(False, False, True), (True, True, True), (True, False, False)]
)
def test_base_weights_stay_as_loaded_unless_a_lora_trains_in_bf16(
    lora: bool, quantized: bool, bf16: bool
) -> None:
    speed = choose_speedups(
        "cuda", bf16=bf16, lora=lora, quantized=quantized, target_modules="all-linear"
    )
    assert not speed.bf16_weights
    # FlashAttention takes only bf16 tensors.
    assert not speed.flash_attention


def test_cuda_gets_fused_optimizer_flash_attention_and_liger_where_installed() -> None:
    def cuda(installed: set[str], target_modules: str = "all-linear") -> Speedups:
        return choose_speedups(
            "cuda",
            bf16=True,
            lora=True,
            quantized=False,
            target_modules=target_modules,
            installed=installed.__contains__,
        )

    bare = cuda(set())
    assert bare.fused_optimizer and bare.bf16_weights
    assert not (bare.completion_head or bare.flash_attention or bare.liger)
    full = cuda({"flash_attn", "liger_kernel"})
    assert full.flash_attention and full.liger
    assert not cuda({"liger_kernel"}, target_modules="q_proj,lm_head").liger


def test_activations_fit_a_small_model_but_not_a_large_one_on_a_small_gpu() -> None:
    gib = 2**30
    small = {"parameters": 135_000_000, "layers": 30, "hidden": 576, "intermediate": 1536}
    large = {"parameters": 7_000_000_000, "layers": 32, "hidden": 4096, "intermediate": 11008}
    assert activations_fit(**small, tokens=8 * 2048, memory_bytes=24 * gib)
    assert not activations_fit(**large, tokens=8 * 2048, memory_bytes=24 * gib)
    assert activations_fit(**large, tokens=8 * 2048, memory_bytes=141 * gib)


def test_training_arguments_turn_the_speedups_on(tmp_path: Path) -> None:
    speed = Speedups(
        bf16_weights=True,
        completion_head=False,
        fused_optimizer=True,
        flash_attention=True,
        liger=False,
    )
    config = plan_run(60, 0).config
    arguments = training_arguments(
        config,
        output_dir=tmp_path,
        max_length=300,
        bf16=False,
        device="cpu",
        evaluate=False,
        speed=speed,
        recompute_activations=True,
    )
    assert arguments.optim == "adamw_torch_fused"
    assert arguments.padding_free and arguments.max_length is None
    assert arguments.activation_checkpointing
    plain = training_arguments(
        config,
        output_dir=tmp_path,
        max_length=300,
        bf16=False,
        device="cpu",
        evaluate=False,
        speed=CPU_SPEED,
    )
    assert plain.optim == "adamw_torch" and not plain.padding_free
    assert plain.max_length == 300 and not plain.activation_checkpointing


@pytest.mark.parametrize(
    ("device", "lora", "alone", "steps", "compiler", "chosen"),
    [
        ("cpu", True, True, COMPILE_MIN_STEPS, True, True),
        ("cpu", True, True, COMPILE_MIN_STEPS - 1, True, False),
        ("cpu", True, False, COMPILE_MIN_STEPS, True, False),
        ("cpu", True, True, COMPILE_MIN_STEPS, False, False),
        ("cpu", False, True, COMPILE_MIN_STEPS, True, False),
        ("cuda", True, True, COMPILE_MIN_STEPS, True, False),
    ],
)
def test_layers_are_compiled_only_for_a_long_cpu_lora_run_alone_with_a_compiler(
    device: str, lora: bool, alone: bool, steps: int, compiler: bool, chosen: bool
) -> None:
    speed = choose_speedups(
        device,
        bf16=False,
        lora=lora,
        quantized=False,
        target_modules="all-linear",
        steps=steps,
        alone=alone,
        compiler=lambda: compiler,
    )
    assert speed.compiled_layers is chosen
    # The compiled layers fuse the norms themselves.
    assert speed.fused_norms is (device == "cpu" and not chosen)


@pytest.mark.parametrize(
    ("steps", "before", "chosen"),
    [
        (COMPILE_MIN_STEPS_WARM, True, True),
        (COMPILE_MIN_STEPS_WARM - 1, True, False),
        (COMPILE_MIN_STEPS_WARM, False, False),
    ],
)
def test_layers_compiled_before_are_compiled_for_shorter_runs(
    steps: int, before: bool, chosen: bool
) -> None:
    speed = choose_speedups(
        "cpu",
        bf16=False,
        lora=True,
        quantized=False,
        target_modules="all-linear",
        steps=steps,
        compiled_before=lambda: before,
        compiler=lambda: True,
    )
    assert speed.compiled_layers is chosen


@pytest.mark.parametrize(
    ("device", "lora", "alone", "steps"),
    [
        ("cuda", True, True, COMPILE_MIN_STEPS_WARM),
        ("cpu", False, True, COMPILE_MIN_STEPS_WARM),
        ("cpu", True, False, COMPILE_MIN_STEPS_WARM),
        ("cpu", True, True, COMPILE_MIN_STEPS_WARM - 1),
        ("cpu", True, True, COMPILE_MIN_STEPS),
    ],
)
def test_the_compile_cache_is_asked_only_of_a_run_it_could_decide(
    device: str, lora: bool, alone: bool, steps: int
) -> None:
    asked: list[str] = []

    def compiled_before() -> bool:
        asked.append(device)
        return True

    choose_speedups(
        device,
        bf16=False,
        lora=lora,
        quantized=False,
        target_modules="all-linear",
        steps=steps,
        alone=alone,
        compiled_before=compiled_before,
        compiler=lambda: True,
    )
    assert not asked


def test_the_compile_cache_is_the_homes_unless_the_user_set_one(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As importing torch._dynamo leaves it where the user set none: inductor's default.
    monkeypatch.setenv(CACHE_ENV, default_cache_dir())
    assert use_compile_cache() == isolated_home / "inductor"
    assert os.environ[CACHE_ENV] == str(isolated_home / "inductor")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert use_compile_cache() == tmp_path / "mine"


def test_a_layer_kind_is_marked_compiled_only_once_a_frame_compiled(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = AutoConfig.from_pretrained(tiny_model_dir)
    kind = LayerKind(config, bf16=False, adapter="lora r16")
    assert kind.key() == LayerKind(config, bf16=False, adapter="lora r16").key()
    others = [
        LayerKind(config, bf16=True, adapter="lora r16"),
        LayerKind(config, bf16=False, adapter="lora r8"),
    ]
    assert len({kind.key(), *(other.key() for other in others)}) == 3
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setitem(counters["frames"], "ok", 0)
    kind.mark_compiled()
    assert not kind.compiled_before()
    monkeypatch.setitem(counters["frames"], "ok", 2)
    kind.mark_compiled()
    assert kind.compiled_before()
    assert kind.marker().parent == tmp_path / "cache" / MARKERS_DIRNAME
    assert not any(other.compiled_before() for other in others)


@pytest.mark.skipif(not compiler_found(), reason="no C++ compiler (g++) for inductor")
def test_a_long_run_compiles_cold_and_a_short_one_after_it_compiles_warm(
    tmp_path: Path, tiny_model_dir: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    db_path = tmp_path / "tunesmith.db"
    db, project = tiny_project(db_path, tiny_model_dir)
    markers = isolated_home / "inductor" / MARKERS_DIRNAME
    logs = []
    for steps in (COMPILE_MIN_STEPS_WARM, COMPILE_MIN_STEPS, COMPILE_MIN_STEPS_WARM):
        plan = plan_for_project(db, project, {"max_steps": steps, "batch_size": 4})
        logs.append(train_to_the_end(db_path, prepare_run(db, project, plan).id).stdout)
        assert get_run(db, len(logs)).status == "completed"
    # Shorter and cold: eager. Long: compiled cold, marked. Shorter after it: compiled warm.
    assert "Compiling the model's layers" not in logs[0]
    assert "Compiling the model's layers for training: the first steps take longer\n" in logs[1]
    assert "take longer (less so: this kind was compiled before)" in logs[2]
    assert len(list(markers.iterdir())) == 1
    # What inductor compiled is kept there too, not in its default folder under /tmp.
    assert any(path.suffix == ".py" for path in (isolated_home / "inductor").rglob("*"))


def test_ia3_and_prompt_tuning_get_neither_the_lora_fold_nor_compiled_layers() -> None:
    speed = choose_speedups(
        "cpu",
        bf16=True,
        lora=True,
        quantized=False,
        target_modules="all-linear",
        lora_layers=False,
        steps=COMPILE_MIN_STEPS,
        compiler=lambda: True,
    )
    assert speed.bf16_weights and not (speed.folded_lora or speed.compiled_layers)


@pytest.mark.skipif(not compiler_found(), reason="no C++ compiler (g++) for inductor")
def test_compiled_layers_give_the_eager_loss_and_run_only_in_a_training_step(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    eager: Any = _trainer(tiny_model_dir, tmp_path, CPU_SPEED, bf16=False)
    fast: Any = _trainer(
        tiny_model_dir,
        tmp_path,
        replace(CPU_SPEED, compiled_layers=True, fused_norms=False),
        bf16=False,
    )
    batch = next(iter(eager.get_train_dataloader()))
    loss, grads, _ = _loss_and_grads(eager, batch)
    counters["frames"].clear()
    with fast._compiled.active():
        compiled_loss, compiled_grads, _ = _loss_and_grads(fast, batch)
    # Compiled for real: a failed compile would have run eager, with no frame compiled.
    assert counters["frames"]["ok"] >= 1
    assert compiled_loss == pytest.approx(loss, rel=1e-5)
    assert compiled_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-4, atol=1e-6)
    layers = fast._compiled.layers
    assert len(layers) == 2  # the tiny model's decoder layers
    seen: list[bool] = []
    layers[0].register_forward_pre_hook(lambda m, a: seen.append("forward" in vars(m)))
    fast.args.max_steps = 2
    fast.train()
    assert seen == [True, True]
    with torch.no_grad():
        fast.model(**{k: v for k, v in batch.items() if k != "labels"})
    assert seen[-1] is False and not any("forward" in vars(layer) for layer in layers)
