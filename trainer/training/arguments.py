"""What a run hands TRL: its arguments, its adapter, and the model made ready for both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import IA3Config, LoraConfig, PeftConfig, PromptTuningConfig, PromptTuningInit
from transformers import PreTrainedModel
from trl import SFTConfig

from trainer.control.config import RunConfig
from trainer.training.cpu_attention import register_cpu_attention
from trainer.training.hardware import Speedups, activations_fit


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


def adapter_config(
    config: RunConfig, *, init_text: str = "", tokenizer_path: str = ""
) -> PeftConfig | None:
    """The adapter to train, or None for a full fine-tune. Prompt tuning's virtual tokens
    start as the tokens of ``init_text``, read with the tokenizer at ``tokenizer_path``."""
    if config.full:
        return None
    if config.method == "ia3":
        # peft's defaults per architecture: keys, values and the MLP's down projection.
        return IA3Config(task_type="CAUSAL_LM")
    if config.method == "prompt-tuning":
        return PromptTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=config.virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT,
            prompt_tuning_init_text=init_text,
            tokenizer_name_or_path=tokenizer_path,
        )
    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.target_modules,
        use_dora=config.method == "dora",
        use_rslora=config.method == "rslora",
        task_type="CAUSAL_LM",
    )


def prepare_model(model: PreTrainedModel, speed: Speedups) -> None:
    """Store the base weights and pick the attention that ``speed`` calls for, in place."""
    if speed.bf16_weights:
        # peft makes the LoRA weights fp32 again, so the optimizer still steps in fp32.
        model.bfloat16()
    if speed.flash_attention:
        model.set_attn_implementation("flash_attention_2")
    elif speed.eager_attention:
        # Compiled layers fuse eager's own ops; a function of ours would be opaque to that.
        model.set_attn_implementation(
            "eager" if speed.compiled_layers else register_cpu_attention()
        )


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
