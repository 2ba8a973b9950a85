"""Profile: where one training step of the embedded model goes, by part.

Trains as `trainer.training.run` does on this machine (precision, threads and speedups as
chosen there) on the demo rows: a few steps timed, then a few profiled with torch.profiler
inside `Trainer.train`, whose time is split into the forward, the backward and the optimizer step,
and within those into the matmuls through the frozen weights, LoRA's own matmuls, the LM head,
attention, the other ops, and what no op accounts for (Python, dispatch and autograd's
bookkeeping). Prints that table and the ops that took longest; `bench/RESULTS.md` records them.

    python -m bench.profile_step [--steps N]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from typing import Any

from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile, record_function
from transformers import TrainerCallback

from bench.demo_trainer import train_like_a_run
from bench.train_throughput import demo_rows
from trainer.control.config import plan_run

STEP = "training step"
MATMULS = {"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::matmul", "aten::linear"}


class ProfileSteps(TrainerCallback):
    """Times every optimizer step; profiles the ``profiled`` steps after ``warmup``."""

    def __init__(self, warmup: int, profiled: int) -> None:
        self.warmup, self.profiled = warmup, profiled
        self.profiler = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
        self.step_range = record_function(STEP)
        self.seconds: list[float] = []
        self.start = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.warmup:
            self.profiler.start()
        if self.warmup <= state.global_step < self.warmup + self.profiled:
            self.step_range.__enter__()
        self.start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds.append(time.perf_counter() - self.start)
        # global_step already counts the step that just ended.
        if self.warmup < state.global_step <= self.warmup + self.profiled:
            self.step_range.__exit__(None, None, None)
        if state.global_step == self.warmup + self.profiled:
            self.profiler.stop()


def part_of(event: FunctionEvent, lora_rank: int, vocabulary: int) -> str:
    """Which part of a step an op's own time belongs to."""
    name = event.name
    if name == STEP:
        return "no op (Python, dispatch, data)"
    if "scaled_dot_product" in name or "flash_attention" in name:
        return "attention"
    if name in MATMULS:
        # torch types input_shapes loosely: a list of each input's sizes.
        shapes: list[list[int]] = list(event.input_shapes)  # type: ignore[arg-type]
        dimensions = {size for shape in shapes for size in shape}
        if vocabulary in dimensions:
            return "LM head matmul"
        if lora_rank in dimensions:
            return "LoRA matmuls"
        return "frozen-weight matmuls"
    if name.startswith(("autograd::", "Optimizer.")) or "Backward" in name:
        return "no op (autograd, optimizer bookkeeping)"
    return "other ops (norms, activations, softmax, casts, copies)"


def phase_of(event: FunctionEvent) -> str | None:
    """The phase of a step an event ran in; None outside the profiled steps."""
    phase = "forward"
    current: FunctionEvent | None = event
    while current is not None:
        if current.name.startswith("Optimizer."):
            phase = "optimizer step"
        elif current.name.startswith("autograd::engine") and phase == "forward":
            phase = "backward"
        elif current.name == STEP:
            return phase
        current = current.cpu_parent
    return None


def main() -> None:
    """Build the trainer, warm it up, profile ``--steps`` steps and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    train_rows, rows = demo_rows()
    config = plan_run(len(rows), 0, {"max_steps": args.steps + args.warmup}).config
    clock = ProfileSteps(args.warmup, args.steps)
    model = train_like_a_run(config, train_rows, rows, clock)
    vocabulary = model.get_output_embeddings().weight.shape[0]
    # The first step warms caches up.
    plain_step = statistics.median(clock.seconds[1 : args.warmup])
    profiled_step = statistics.median(clock.seconds[args.warmup :])
    profiler = clock.profiler
    own: dict[tuple[str, str], float] = collections.defaultdict(float)
    by_op: dict[tuple[str, str], float] = collections.defaultdict(float)
    for event in profiler.events():
        phase = phase_of(event)
        if phase is not None:
            part = part_of(event, config.lora_rank, vocabulary)
            own[phase, part] += event.self_cpu_time_total / 1e6 / args.steps
            by_op[phase, event.name] += event.self_cpu_time_total / 1e6 / args.steps
    total = sum(own.values())
    print(
        f"one step (batch {config.batch_size}): {plain_step:.3f} s unprofiled, "
        f"{profiled_step:.3f} s profiled"
    )
    print(f"{'phase':<16}{'part':<56}{'s/step':>8}{'share':>8}")
    for (phase, part), spent in sorted(own.items(), key=lambda item: -item[1]):
        print(f"{phase:<16}{part:<56}{spent:>8.3f}{spent / total:>8.1%}")
    for phase in ("forward", "backward", "optimizer step"):
        spent = sum(value for (name, _), value in own.items() if name == phase)
        print(f"{phase:<16}{'(all)':<56}{spent:>8.3f}{spent / total:>8.1%}")
    print(f"\nthe {args.top} ops with the most time of their own")
    for (phase, name), spent in sorted(by_op.items(), key=lambda item: -item[1])[: args.top]:
        print(f"{phase:<16}{name:<56}{spent:>8.3f}{spent / total:>8.1%}")


if __name__ == "__main__":
    main()
