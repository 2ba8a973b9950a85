"""What the machine offers training: bf16 support and the fastest thread count, measured."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU features that make bf16 autocast faster than fp32 (2.2x measured on such a CPU)."""


@dataclass(frozen=True)
class Precision:
    """The training precision and why it was chosen."""

    name: str
    bf16: bool
    reason: str


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def choose_precision(device: str) -> Precision:
    """bf16 where the hardware computes it natively, else fp32."""
    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", True, "the GPU computes bf16 natively")
        return Precision("fp32", False, "this GPU has no bf16")
    native = sorted(set(CPU_BF16_FLAGS) & cpu_flags())
    if native:
        return Precision("bf16", True, f"the CPU has {', '.join(native)}")
    return Precision("fp32", False, "the CPU has no native bf16 (avx512_bf16 or amx_bf16)")


def choose_threads() -> int:
    """Set and return the torch thread count that multiplies training-sized matrices fastest.

    More threads win unless fewer are clearly (25%) faster: a brief measurement on a busy
    machine is noisy, and under load a process with more threads still gets more of the CPU.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = max(1, cores or 1)
    candidates = sorted({cores, max(1, cores // 2)}, reverse=True)
    left = torch.randn(512, 576)
    right = torch.randn(576, 1536)
    timings = dict.fromkeys(candidates, float("inf"))
    for _ in range(3):
        for threads in candidates:
            torch.set_num_threads(threads)
            torch.matmul(left, right)
            start = time.perf_counter()
            for _ in range(10):
                torch.matmul(left, right)
            timings[threads] = min(timings[threads], time.perf_counter() - start)
    best = candidates[0]
    for threads in candidates[1:]:
        if timings[threads] < 0.75 * timings[best]:
            best = threads
    torch.set_num_threads(best)
    return best


ACTIVATION_HEADROOM = 0.8
"""Share of GPU memory that weights and kept activations may fill before activations are
recomputed instead (the rest goes to the optimizer, the allocator and the loss tiles)."""


@dataclass(frozen=True)
class Speedups:
    """What makes a run fast on this machine; each is on only where it applies and is safe."""

    bf16_weights: bool
    """Frozen base weights stored in bf16: autocast no longer re-casts them on every op."""
    completion_head: bool
    """The LM head scores only the trained positions; TRL does so itself only under Triton."""
    fused_optimizer: bool
    """``adamw_torch_fused``: one kernel per step for all parameters."""
    flash_attention: bool
    """FlashAttention 2 with padding-free batches: no compute spent on padding."""
    liger: bool
    """Liger's Triton kernels for norms, SwiGLU and RoPE."""


def choose_speedups(
    device: str,
    *,
    bf16: bool,
    lora: bool,
    quantized: bool,
    target_modules: str,
    installed: Callable[[str], bool] | None = None,
) -> Speedups:
    """The speedups that apply to a run on ``device`` (``installed`` tells which packages exist)."""
    has = installed or _installed
    cuda = device == "cuda"
    # Full fine-tuning updates the base weights: bf16 would round small updates away.
    bf16_weights = bf16 and lora and not quantized
    return Speedups(
        bf16_weights=bf16_weights,
        completion_head=device == "cpu",
        fused_optimizer=cuda,
        # FlashAttention takes only bf16/fp16 tensors.
        flash_attention=cuda and bf16_weights and has("flash_attn"),
        # Liger's head kernels would bypass a LoRA on lm_head; TRL applies only its layer kernels.
        liger=cuda and has("liger_kernel") and "lm_head" not in target_modules,
    )


def activations_fit(
    *,
    parameters: int,
    layers: int,
    hidden: int,
    intermediate: int,
    tokens: int,
    memory_bytes: int,
) -> bool:
    """Whether bf16 weights plus the activations kept for the backward of ``tokens`` fit.

    Per token and layer a Llama-style block keeps about ten hidden-sized and four
    intermediate-sized tensors (norm, projection and MLP inputs), at 2 bytes each.
    """
    per_token = layers * 2 * (10 * hidden + 4 * intermediate)
    return 2 * parameters + tokens * per_token <= ACTIVATION_HEADROOM * memory_bytes


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None
