"""Benchmark: one training step with a lever on and off, step by step.

Trains as `trainer.training.run` does on this machine (precision, threads, speedups and the
malloc setting) on the same 8 demo rows every step, with a learning rate too small to change
the loss, and switches the lever on for odd steps and off for even ones, so machine load hits
both alike. Prints each variant's median step after its first and the ratio. The levers:

- `fold`: LoRA's scale and add folded into one matmul (`trainer.training.fused_lora`) against
  peft's forward;
- `compile`: the decoder layers' compiled training forward (`trainer.training.compiled_layers`)
  against the eager one; the first compiled step includes the compile.

`--default-malloc` leaves glibc's default (freed memory over 32 MiB unmapped): run it once with
and once without to compare the malloc setting, which holds for a whole process.

    python -m bench.step_levers [--lever fold|compile] [--steps N] [--default-malloc]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Any

from peft.tuners.lora import Linear as LoraLinear
from transformers import TrainerCallback

from bench.demo_trainer import train_like_a_run
from bench.train_throughput import demo_rows
from trainer.control.config import plan_run
from trainer.training.compiled_layers import CompiledLayers
from trainer.training.fused_lora import fold_lora_scaling

BATCH = 8


class Alternate(TrainerCallback):
    """Turns ``lever`` on for odd steps and off for even ones, timing each step."""

    def __init__(self, lever: str) -> None:
        self.lever = lever
        self.seconds: dict[str, list[float]] = {"off": [], "on": []}
        self.variant = "off"
        self.compiled: CompiledLayers | None = None
        self.stack = contextlib.ExitStack()
        self.start = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs["model"]
        self.variant = "on" if state.global_step % 2 else "off"
        if self.lever == "fold":
            if self.variant == "on":
                fold_lora_scaling(model)
            else:
                for layer in model.modules():
                    if isinstance(layer, LoraLinear):
                        vars(layer).pop("forward", None)
        elif self.variant == "on":
            self.compiled = self.compiled or CompiledLayers(model.get_base_model())
            self.stack.enter_context(self.compiled.active())
        self.start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds[self.variant].append(time.perf_counter() - self.start)
        self.stack.close()


def main() -> None:
    """Train ``--steps`` steps alternating the variants; print their medians."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--lever", choices=["fold", "compile"], default="fold")
    parser.add_argument("--steps", type=int, default=21)
    parser.add_argument("--default-malloc", action="store_true")
    parser.add_argument(
        "--first-row",
        type=int,
        default=0,
        help="Train on the 8 demo rows from this one: another batch length than the default's.",
    )
    args = parser.parse_args()
    train_rows, rows = demo_rows()
    config = plan_run(BATCH * args.steps, 0, {"max_steps": args.steps, "learning_rate": 1e-9})
    clock = Alternate(args.lever)
    # The same rows in the same order every step.
    train_like_a_run(
        config.config,
        train_rows[args.first_row : args.first_row + BATCH],
        rows[args.first_row : args.first_row + BATCH] * args.steps,
        clock,
        kept_memory=not args.default_malloc,
        sequential=True,
    )
    medians = {name: statistics.median(times[1:]) for name, times in clock.seconds.items()}
    for name, times in clock.seconds.items():
        print(f"{name}: median {medians[name]:.3f} s a step, steps {[round(t, 3) for t in times]}")
    print(
        f"{args.lever}: ours {medians['on']:.3f} s, baseline {medians['off']:.3f} s, "
        f"ratio {medians['off'] / medians['on']:.2f}"
    )


if __name__ == "__main__":
    main()
