"""What the machine offers training: the precision and thread count that are fastest, measured.

On a CPU, bf16 is fastest on some machines (AMX, and AMD's EPYC with avx512_bf16: 2-4x fp32)
and slowest on others (Intel Xeons with avx512_bf16 but no AMX: about half of fp32), and no
flag tells which. So the first run of a model shape on a machine times the work a training
step is made of in both precisions and keeps the result under the tunesmith home.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import torch

from store.atomic import write_atomically
from store.paths import ensure_private_dir, home_dir

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
"""CPU features (x86's, and ARM's ``bf16``) without which bf16 is emulated: fp32 then wins
without a measurement."""
MEASURED_FILENAME = "hardware.json"
"""The measurements kept under the tunesmith home, one per CPU model, torch version and shape."""
MEASURED_TOKENS = 512
"""Rows of the measured matmuls: a training batch is hundreds to thousands of tokens."""
MEASURED_DIMENSION_LIMIT = 2048
"""Largest hidden or intermediate size measured: past it the rate per FLOP no longer changes,
and a 1.5B model's full shape would take seconds."""
MEASURE_REPEATS = 5
"""Timed passes per precision; the fastest counts, since load only ever slows a pass down."""
MEASURE_SECONDS = 1.0
"""After this long, no more repeats start (two always run): a large shape on a slow or busy CPU
must not hold a run's start for long."""
BF16_MARGIN = 1.1
"""How much faster bf16 must measure to be chosen: fp32 rounds less, so a tie or noise keeps it."""
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
"""glibc's ``mallopt`` parameters (``malloc.h``)."""
KEPT_ALLOCATION_BYTES = 2**30
"""Allocations up to this size come from malloc's heap and go back to it when freed."""
COMPILE_MIN_STEPS = 200
"""Fewest steps a CPU run must be sure of to compile its layers cold: a first compile took
27-59 s and saved 0.3-0.9 s a step on the demo rows, won back after 63-85 steps."""
COMPILE_MIN_STEPS_WARM = 100
"""Fewest steps a CPU run must be sure of to compile layers of a kind compiled before: the same
batch shape then compiles in seconds, but another one still took 43 s against 59 s cold (new
rows, or the same ones shuffled otherwise), won back after 48 steps."""


@dataclass(frozen=True)
class Precision:
    """The training precision and why it was chosen."""

    name: str
    bf16: bool
    reason: str


@dataclass(frozen=True)
class MatmulShape:
    """Training-shaped work: ``tokens`` rows through one block's MLP, forward and backward."""

    tokens: int
    hidden: int
    intermediate: int

    @classmethod
    def of_model(cls, config: Any) -> MatmulShape:
        """The measured shape of a model (its MLP, capped at ``MEASURED_DIMENSION_LIMIT``)."""
        text = config.get_text_config()
        hidden = int(text.hidden_size)
        intermediate = int(getattr(text, "intermediate_size", None) or 4 * hidden)
        return cls(
            tokens=MEASURED_TOKENS,
            hidden=min(hidden, MEASURED_DIMENSION_LIMIT),
            intermediate=min(intermediate, MEASURED_DIMENSION_LIMIT),
        )

    @property
    def flops(self) -> int:
        """FLOPs of one pass: two matmuls forward and their input gradients backward.

        Frozen weights need no weight gradient, so this is LoRA's 4 FLOPs per weight and token.
        """
        return 4 * 2 * self.tokens * self.hidden * self.intermediate

    def __str__(self) -> str:
        return f"{self.tokens}x{self.hidden}x{self.intermediate}"


@dataclass(frozen=True)
class Throughput:
    """Training-shaped matmul rates measured in each precision, in GFLOP/s."""

    fp32: float
    bf16: float

    @property
    def best(self) -> float:
        """The faster of the two."""
        return max(self.fp32, self.bf16)


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (x86 ``flags``, ARM ``Features``; empty elsewhere)."""
    for key, value in _cpuinfo():
        if key in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_model() -> str:
    """The CPU's model name, as Linux reports it, else as Python's platform module does."""
    for key, value in _cpuinfo():
        if key == "model name":
            return value
    return platform.processor() or platform.machine() or "unknown CPU"


def _cpuinfo() -> list[tuple[str, str]]:
    """The ``key: value`` lines of the first CPU in ``/proc/cpuinfo`` (none off Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return []
    lines = []
    for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        lines.append((key.strip(), value.strip()))
    return lines


def measure_throughput(shape: MatmulShape, *, repeats: int = MEASURE_REPEATS) -> Throughput:
    """Time ``shape``'s pass in fp32 and under bf16 autocast, at torch's current thread count.

    bf16 runs as a LoRA run does: frozen weights stored in bf16, inputs cast by autocast. The
    passes alternate, so a busy machine slows both alike, and each precision's fastest of
    ``repeats`` (fewer past ``MEASURE_SECONDS``) counts.
    """
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(shape.tokens, shape.hidden, generator=generator)
    up = torch.randn(shape.intermediate, shape.hidden, generator=generator) / shape.hidden**0.5
    down = torch.randn(shape.hidden, shape.intermediate, generator=generator)
    down /= shape.intermediate**0.5
    weights = {False: (up, down), True: (up.bfloat16(), down.bfloat16())}
    fastest = dict.fromkeys(weights, math.inf)
    # The first pass of each precision picks and compiles its kernels: not timed.
    for bf16, (up_weight, down_weight) in weights.items():
        _training_pass(inputs, up_weight, down_weight, bf16=bf16)
    began = time.perf_counter()
    for repeat in range(repeats):
        if repeat >= 2 and time.perf_counter() - began > MEASURE_SECONDS:
            break
        for bf16, (up_weight, down_weight) in weights.items():
            start = time.perf_counter()
            _training_pass(inputs, up_weight, down_weight, bf16=bf16)
            fastest[bf16] = min(fastest[bf16], time.perf_counter() - start)
    return Throughput(
        fp32=shape.flops / fastest[False] / 1e9, bf16=shape.flops / fastest[True] / 1e9
    )


def _training_pass(
    inputs: torch.Tensor, up: torch.Tensor, down: torch.Tensor, *, bf16: bool
) -> None:
    """Forward through ``up`` and ``down``, then the gradient of the inputs only."""
    rows = inputs.detach().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        outputs = torch.nn.functional.linear(torch.nn.functional.linear(rows, up), down)
    torch.autograd.grad(outputs.sum(), rows)


def choose_precision(
    device: str,
    shape: MatmulShape,
    *,
    on_status: Callable[[str], None],
    alone: bool = True,
    measure: Callable[[MatmulShape], Throughput] = measure_throughput,
) -> Precision:
    """bf16 where it trains faster than fp32 on this machine, else fp32.

    A CUDA GPU keeps bf16 where it supports it. A CPU with bf16 instructions is measured once
    per CPU model, torch version and ``shape`` (``measure``), and the result kept under the
    tunesmith home; ``on_status`` hears what went wrong with that file. ``alone`` is false
    for one of several ranks: measured side by side they could disagree, so they go by the
    measurement kept by an earlier run on this machine, else by the CPU's flags.
    """
    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", True, "the GPU computes bf16 natively")
        return Precision("fp32", False, "this GPU has no bf16")
    flags = cpu_flags()
    native = sorted(set(CPU_BF16_FLAGS) & flags)
    if flags and not native:
        return Precision("fp32", False, "the CPU has no bf16 instructions (avx512_bf16, amx_bf16)")
    path = home_dir() / MEASURED_FILENAME
    key = f"{cpu_model()} | torch {torch.__version__} | {shape}"
    kept = _read_measurements(path, on_status)
    entry = kept.get(key)
    if entry is not None:
        throughput = _kept_throughput(entry)
        if throughput is not None:
            return _precision_of(throughput, f"measured {entry['measured']}, kept in {path.name}")
        on_status(
            f"Warning: ignoring the measurement for {key!r} in {path}: not two rates and a date"
        )
    if not alone:
        if native:
            return Precision("bf16", True, f"the CPU has {', '.join(native)} (several ranks)")
        return Precision("fp32", False, "the CPU's bf16 support is unknown (several ranks)")
    throughput = measure(shape)
    kept[key] = {
        "fp32_gflops": round(throughput.fp32, 1),
        "bf16_gflops": round(throughput.bf16, 1),
        "measured": date.today().isoformat(),
    }
    try:
        ensure_private_dir(path.parent)
        write_atomically(path, json.dumps(kept, indent=2, sort_keys=True) + "\n")
    except OSError as error:
        on_status(f"Could not keep the precision measurement in {path}: {error.strerror or error}")
    return _precision_of(throughput, "measured now")


def _precision_of(throughput: Throughput, when: str) -> Precision:
    """The precision that ``throughput`` calls for, with its figures as the reason."""
    fp32, bf16 = f"{throughput.fp32:.0f}", f"{throughput.bf16:.0f}"
    if throughput.bf16 >= BF16_MARGIN * throughput.fp32:
        return Precision("bf16", True, f"{bf16} vs {fp32} GFLOP/s measured for fp32 ({when})")
    close = " (bf16 not 10% faster: fp32 rounds less)" if throughput.bf16 > throughput.fp32 else ""
    return Precision("fp32", False, f"{fp32} vs {bf16} GFLOP/s measured for bf16{close} ({when})")


def _read_measurements(path: Path, on_status: Callable[[str], None]) -> dict[str, Any]:
    """The kept measurements by machine; a file that cannot be used is ignored, with a warning."""
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as error:
        on_status(f"Warning: ignoring {path}: {error.strerror or error}; measuring again")
        return {}
    except UnicodeDecodeError:
        on_status(f"Warning: ignoring {path}: not UTF-8 text; measuring again")
        return {}
    except json.JSONDecodeError as error:
        on_status(f"Warning: ignoring {path}: not JSON at line {error.lineno}; measuring again")
        return {}
    if not isinstance(kept, dict):
        on_status(f"Warning: ignoring {path}: not a JSON object; measuring again")
        return {}
    return kept


def _kept_throughput(entry: object) -> Throughput | None:
    """The rates of a kept entry, or None where it is not two positive rates and a date."""
    if not isinstance(entry, dict) or not isinstance(entry.get("measured"), str):
        return None
    rates = []
    for name in ("fp32_gflops", "bf16_gflops"):
        rate = entry.get(name)
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            return None
        if not (0 < rate < math.inf):
            return None
        rates.append(float(rate))
    return Throughput(fp32=rates[0], bf16=rates[1])


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


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory in the process for the next step instead of unmapping it.

    By default glibc maps each allocation over 32 MiB afresh and unmaps it when freed, so the
    kernel zeroes its pages again on first touch. A CPU training step allocates and frees
    several such tensors every time (the answer tokens' logits, their fp32 copy and their
    gradient: 49 MB each for the demo batch's 251 answer tokens on a 49k vocabulary). Kept,
    they cost no page faults after the first step: 1.06-1.07x a step on the demo rows, with a
    peak memory 0.5% higher. Returns whether it applied (glibc only; other C libraries keep
    their own policy).
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the C library this interpreter runs on
    trim = libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    return bool(libc.mallopt(M_MMAP_THRESHOLD, KEPT_ALLOCATION_BYTES) and trim)


EAGER_SCORES_BYTES = 512 * 2**20
"""Most memory eager attention's scores may hold for one step's backward (SDPA holds none)."""


def eager_scores_fit(config: Any, *, batch: int, length: int) -> bool:
    """Whether eager attention's scores for a step of ``batch`` rows of ``length`` tokens of the
    model of ``config`` fit ``EAGER_SCORES_BYTES``: heads x length^2 per row and layer, kept as
    the fp32 softmax and its cast (8 bytes)."""
    text = config.get_text_config()
    scores = int(text.num_hidden_layers) * int(text.num_attention_heads) * batch * length**2
    return 8 * scores <= EAGER_SCORES_BYTES


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
    eager_attention: bool = False
    """Plain matmul attention on a CPU: SDPA's CPU backward takes 7x its forward (1.11-1.16x a
    step on the demo rows); eager keeps its scores for the backward, so only where they fit.
    Ours (``trainer.training.cpu_attention``) unless the layers are compiled."""
    folded_lora: bool = False
    """LoRA's scale and add folded into one ``addmm_`` (``trainer.training.fused_lora``): two
    passes over each adapted layer's output fewer, measured on a CPU."""
    compiled_layers: bool = False
    """The decoder layers' training forward compiled (``trainer.training.compiled_layers``):
    on a CPU, for a LoRA run alone that is long enough to win the compile time back."""
    fused_norms: bool = False
    """Llama's RMSNorm as one autograd function (``trainer.training.fused_norms``): on a CPU,
    where the compiled layers do not fuse it already."""


def choose_speedups(
    device: str,
    *,
    bf16: bool,
    lora: bool,
    quantized: bool,
    target_modules: str,
    scores_fit: bool = False,
    lora_layers: bool = True,
    steps: int = 0,
    compiled_before: Callable[[], bool] | None = None,
    alone: bool = True,
    installed: Callable[[str], bool] | None = None,
    compiler: Callable[[], bool] | None = None,
) -> Speedups:
    """The speedups that apply to a run on ``device`` (``lora``: an adapter, not a full
    fine-tune; ``lora_layers``: LoRA's own, not IA3's or prompt tuning's; ``installed`` tells
    which packages exist and ``compiler`` whether a C++ compiler does; ``scores_fit``: whether
    eager attention's scores fit, as ``eager_scores_fit`` says; ``steps``: the steps the run is
    sure to take; ``compiled_before``: whether inductor's cache holds this kind of layer, asked
    only of a run that may compile; ``alone``: a single process)."""
    has = installed or _installed
    cpu_lora = device == "cpu" and lora and lora_layers
    cuda = device == "cuda"
    # Full fine-tuning updates the base weights: bf16 would round small updates away.
    bf16_weights = bf16 and lora and not quantized
    compiled_layers = (
        cpu_lora
        and alone
        and steps >= COMPILE_MIN_STEPS_WARM
        and (steps >= COMPILE_MIN_STEPS or (compiled_before is not None and compiled_before()))
        and (compiler or compiler_found)()
    )
    return Speedups(
        bf16_weights=bf16_weights,
        completion_head=device == "cpu",
        fused_optimizer=cuda,
        # FlashAttention takes only bf16/fp16 tensors.
        flash_attention=cuda and bf16_weights and has("flash_attn"),
        # Liger's head kernels would bypass a LoRA on lm_head; TRL applies only its layer kernels.
        liger=cuda and has("liger_kernel") and "lm_head" not in target_modules,
        eager_attention=device == "cpu" and scores_fit,
        folded_lora=cpu_lora,
        compiled_layers=compiled_layers,
        fused_norms=device == "cpu" and not compiled_layers,
    )


def compiler_found() -> bool:
    """Whether inductor's C++ compiler (``CXX``, else g++) is on this machine."""
    return shutil.which(os.environ.get("CXX") or "g++") is not None


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
