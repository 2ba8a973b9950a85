"""Benchmark: real (non-padding) training tokens/s of a tunesmith run vs plain TRL defaults.

Both train the same LoRA (r=16, all linear layers) on the same demo rows with the same seed
and learning rate, alternating A/B rounds so machine load hits both alike, each round in a
fresh process of its own (so each side's peak memory is its own, and what a run sets for its
whole process applies to ours only). Plain TRL means `SFTConfig` defaults (gradient
checkpointing on, bf16 when available, batch 8) and torch's thread count. Ours is
`FastSFTTrainer` with the precision, threads, speedups and malloc setting
`trainer.training.run` picks for this machine.

Prints `train: ours X tok/s, baseline Y tok/s, ratio R` as its last line and, on a CPU, before
it `train-limit: ours X GFLOP/s, peak Y GFLOP/s, ratio R`: ours counts 4 FLOPs per token-path
weight and real token, and the peak is the faster of fp32 and bf16 on training-shaped matmuls
(`measure_throughput`), measured after each round of ours.

    python bench/train_throughput.py [--steps N] [--rounds K] [--baseline-fp32]
        [--model embedded|random-135m|random-1.5b|random-tiny] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from trainer.control.config import plan_run
from trainer.models import DEFAULT_BASE_MODEL, ensure_embedded_model, load_base_model
from trainer.training.arguments import adapter_config, prepare_model, recompute_activations
from trainer.training.arguments import training_arguments as tunesmith_arguments
from trainer.training.completion_head import FastSFTTrainer
from trainer.training.data import LENGTH_MARGIN, longest_row, to_prompt_completion
from trainer.training.hardware import (
    MatmulShape,
    Speedups,
    choose_precision,
    choose_speedups,
    choose_threads,
    eager_scores_fit,
    keep_freed_memory,
    measure_throughput,
)

DEMO = Path(__file__).resolve().parent.parent / "examples" / "support_emails.jsonl"


class TokenClock(TrainerCallback):
    """Real tokens and seconds of the steps after the first (which warms caches up)."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.tokens_at_start = 0.0
        self.tokens = 0.0
        self.seconds = 0.0

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not logs or "num_tokens" not in logs:
            return
        now = time.perf_counter()
        if self.start is None:
            self.start, self.tokens_at_start = now, logs["num_tokens"]
        else:
            self.tokens = logs["num_tokens"] - self.tokens_at_start
            self.seconds = now - self.start


RANDOM_SHAPES: dict[str, dict[str, int]] = {
    # The embedded model's own shape (SmolLM2-135M), random weights: its speed without its
    # 98 MB file, for a machine it cannot be copied to.
    "random-135m": {
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
    },
    # A common ~1.5B decoder shape (Qwen2-1.5B-like), random weights: no hub needed.
    "random-1.5b": {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
    },
    # Small enough to check the script itself on a CPU in seconds.
    "random-tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
    },
}


def load_model(name: str, tokenizer_dir: Path | None = None) -> tuple[Any, Any]:
    """The embedded model, or a random-weight model of a named shape with the embedded model's
    tokenizer (read from ``tokenizer_dir`` where given, else from the converted model)."""
    if name == "embedded":
        return load_base_model(DEFAULT_BASE_MODEL, on_status=lambda message: None)
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    source = tokenizer_dir or ensure_embedded_model(on_status=lambda message: None)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)

    torch.manual_seed(0)
    shape: dict[str, Any] = RANDOM_SHAPES[name]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        **shape,
    )
    return LlamaForCausalLM(config), tokenizer


def demo_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The demo task's train rows, as stored and in TRL's prompt/completion form."""
    raw = [json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines()]
    train_rows = [
        {"id": number, **row} for number, row in enumerate(raw, 1) if row["split"] == "train"
    ]
    return train_rows, to_prompt_completion(train_rows, None)


def token_path_parameters(model: Any) -> int:
    """Weights every real token goes through forward and backward: the linear layers.

    Not the embedding (a lookup) nor the LM head, which ours runs on the answer tokens only.
    """
    head = model.get_output_embeddings()
    return sum(
        module.weight.numel()
        for module in model.modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    )


def peak_memory_mib() -> float:
    """Peak accelerator memory on CUDA, else the process's peak resident size."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    arguments: SFTConfig,
    rows: list[dict[str, Any]],
    model_name: str,
    tokenizer_dir: Path | None,
    speed: Speedups | None,
    threads: int,
) -> tuple[float, float, int]:
    """Train with ``arguments`` (tunesmith's trainer and ``speed`` when given, else plain TRL)
    on ``threads`` threads; return real tokens/s, peak memory (MiB) and parameter count."""
    torch.set_num_threads(threads)
    if speed is not None and not torch.cuda.is_available():
        keep_freed_memory()
    model, tokenizer = load_model(model_name, tokenizer_dir)
    parameters = sum(p.numel() for p in model.parameters())
    clock = TokenClock()
    common: dict[str, Any] = {
        "model": model,
        "args": arguments,
        "train_dataset": Dataset.from_list(rows),
        "processing_class": tokenizer,
        "peft_config": adapter_config(plan_run(len(rows), 0).config),
        "callbacks": [clock],
    }
    if speed is None:
        trainer: SFTTrainer = SFTTrainer(**common)
    else:
        prepare_model(model, speed)
        trainer = FastSFTTrainer(**common, speed=speed)
    torch.manual_seed(0)
    trainer.train()
    return clock.tokens / clock.seconds, peak_memory_mib(), parameters


def measure_alone(*arguments: Any) -> tuple[float, float, int]:
    """``measure`` in a fresh process: torch, accelerate and malloc start from their defaults."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(measure, *arguments).result()


def main() -> None:
    """Run the A/B rounds and print the ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", choices=["embedded", *RANDOM_SHAPES], default="embedded")
    parser.add_argument(
        "--tokenizer",
        type=Path,
        help="Folder of the embedded model's tokenizer files, for a random-weight model on a "
        "machine without the embedded model (default: the converted embedded model).",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="Dense bf16 peak of the GPU for MFU (H100/H200: 989).",
    )
    parser.add_argument(
        "--baseline-fp32",
        action="store_true",
        help="Plain TRL with bf16=False: its default emulates bf16 on a CPU without bf16 "
        "instructions, which makes the usual ratio say more about it than about us.",
    )
    args = parser.parse_args()
    train_rows, rows = demo_rows()
    config = plan_run(len(rows), 0, {"max_steps": args.steps}).config
    model, tokenizer = load_model(args.model, args.tokenizer)
    max_length = longest_row(train_rows, tokenizer, None)[0] + LENGTH_MARGIN
    device = "cuda" if torch.cuda.is_available() else "cpu"
    default_threads = torch.get_num_threads()
    threads = choose_threads() if device == "cpu" else default_threads
    shape = MatmulShape.of_model(model.config)
    precision = choose_precision(device, shape, on_status=print)
    print(f"precision {precision.name}: {precision.reason}; {threads} threads")
    bf16 = precision.bf16
    speed = choose_speedups(
        device,
        bf16=bf16,
        lora=True,
        quantized=False,
        target_modules=config.target_modules,
        scores_fit=eager_scores_fit(model.config, batch=config.batch_size, length=max_length),
    )
    with tempfile.TemporaryDirectory() as scratch:
        ours_arguments = tunesmith_arguments(
            config,
            output_dir=Path(scratch) / "ours",
            max_length=max_length,
            bf16=bf16,
            device=device,
            evaluate=False,
            speed=speed,
            # Only a GPU run needs the model's shape to decide this.
            recompute_activations=recompute_activations(
                model, config.batch_size * max_length, device
            ),
        )
        ours_arguments.save_strategy = "no"
        baseline_arguments = SFTConfig(
            output_dir=str(Path(scratch) / "baseline"),
            max_steps=args.steps,
            learning_rate=config.learning_rate,
            per_device_train_batch_size=config.batch_size,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=device == "cpu",
            disable_tqdm=True,
            seed=config.seed,
            # None is TRL's default: bf16 wherever torch allows it.
            bf16=False if args.baseline_fp32 else None,
        )
        ours: list[float] = []
        baseline: list[float] = []
        memory: dict[str, float] = {}
        parameters = 0
        peak = 0.0
        for round_number in range(args.rounds):
            rate, memory["ours"], parameters = measure_alone(
                ours_arguments, rows, args.model, args.tokenizer, speed, threads
            )
            ours.append(rate)
            if device == "cpu":
                peak = max(peak, measure_throughput(shape).best)
            rate, memory["baseline"], parameters = measure_alone(
                baseline_arguments, rows, args.model, args.tokenizer, None, default_threads
            )
            baseline.append(rate)
            print(f"round {round_number + 1}: ours {ours[-1]:.0f}, baseline {baseline[-1]:.0f}")
    ours_median, baseline_median = statistics.median(ours), statistics.median(baseline)
    if device == "cuda":
        # LoRA: forward and input gradients of the frozen base, about 4 FLOPs per parameter.
        for side, rate in (("ours", ours_median), ("baseline", baseline_median)):
            mfu = 4 * parameters * rate / (args.peak_tflops * 1e12)
            print(f"{side}: {rate:.0f} tok/s, peak {memory[side]:.0f} MiB, MFU {mfu:.1%}")
    else:
        print(f"peak memory: ours {memory['ours']:.0f} MiB, baseline {memory['baseline']:.0f} MiB")
        achieved = 4 * token_path_parameters(model) * ours_median / 1e9
        print(
            f"train-limit: ours {achieved:.0f} GFLOP/s, peak {peak:.0f} GFLOP/s, "
            f"ratio {achieved / peak:.2f}"
        )
    # The CPU benchmark of `make bench` is plain "train"; other models are named in brackets.
    name = "train" if args.model == "embedded" else f"train[{args.model}]"
    print(
        f"{name}: ours {ours_median:.0f} tok/s, baseline {baseline_median:.0f} tok/s, "
        f"ratio {ours_median / baseline_median:.2f}"
    )


if __name__ == "__main__":
    main()
