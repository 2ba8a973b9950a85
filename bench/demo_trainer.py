"""Training the embedded model on demo rows as `trainer.training.run` does on this CPU, for the
benchmarks that look inside a step (`bench.profile_step`, `bench.step_levers`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import TrainerCallback

from bench.train_throughput import load_model
from trainer.control.config import RunConfig
from trainer.training.arguments import adapter_config, prepare_model, training_arguments
from trainer.training.completion_head import FastSFTTrainer
from trainer.training.data import LENGTH_MARGIN, longest_row
from trainer.training.hardware import (
    MatmulShape,
    choose_precision,
    choose_speedups,
    choose_threads,
    eager_scores_fit,
    keep_freed_memory,
)


def train_like_a_run(
    config: RunConfig,
    stored_rows: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    callback: TrainerCallback,
    *,
    kept_memory: bool = True,
    sequential: bool = False,
) -> Any:
    """Train on ``rows`` (TRL's form of ``stored_rows``) with the threads, malloc setting,
    precision and speedups a run picks here, ``callback`` watching; return the model.

    ``kept_memory``: whether glibc keeps freed memory, as a run has it; ``sequential``: the
    rows in their order, not shuffled.
    """
    threads = choose_threads()
    kept = kept_memory and keep_freed_memory()
    model, tokenizer = load_model("embedded")
    max_length = longest_row(stored_rows, tokenizer, None)[0] + LENGTH_MARGIN
    precision = choose_precision("cpu", MatmulShape.of_model(model.config), on_status=print)
    speed = choose_speedups(
        "cpu",
        bf16=precision.bf16,
        lora=True,
        quantized=False,
        target_modules=config.target_modules,
        scores_fit=eager_scores_fit(model.config, batch=config.batch_size, length=max_length),
    )
    print(f"{threads} threads, {precision.name}: {precision.reason}; freed memory kept: {kept}")
    prepare_model(model, speed)
    with tempfile.TemporaryDirectory() as scratch:
        arguments = training_arguments(
            config,
            output_dir=Path(scratch),
            max_length=max_length,
            bf16=precision.bf16,
            device="cpu",
            evaluate=False,
            speed=speed,
        )
        arguments.save_strategy = "no"
        if sequential:
            arguments.train_sampling_strategy = "sequential"
        FastSFTTrainer(
            model=model,
            args=arguments,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=adapter_config(config),
            callbacks=[callback],
            speed=speed,
        ).train()
    return model
