"""The decoder layers' training forward compiled by torch.compile, on a CPU.

Most of a CPU step is elementwise work between the matmuls (norms, SiLU, rotary embeddings,
softmax, casts, residual adds, and each of their gradients), one pass over memory per op.
Inductor fuses it: on the demo rows a step took 0.86-0.90 s compiled against 1.13-1.20 s, with
16% less peak memory. Compiling costs 17-37 s the first time (once for the first batch shape,
once more for shapes of any length), a few seconds once inductor's cache holds it, so a run
compiles only when it is long enough to win that back (``hardware.COMPILE_MIN_STEPS``).

Only the training step runs the compiled forward: evaluation and validation's generation,
whose shapes change token by token, keep the eager one. The layers differ only in their
weights, so after the first layer's compile the others' are hits in inductor's cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch._dynamo
from torch import nn


class CompiledLayers:
    """A model's decoder layers with a compiled forward each, switched on for a step."""

    def __init__(self, model: nn.Module) -> None:
        classes = set(getattr(model, "_no_split_modules", None) or ())
        self.layers = [module for module in model.modules() if type(module).__name__ in classes]
        # A compile that fails (no compiler after all, an op inductor lacks) runs eager instead.
        torch._dynamo.config.suppress_errors = True
        self.compiled: list[Callable[..., Any]] = [torch.compile(m.forward) for m in self.layers]

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Within this block the layers run their compiled forward."""
        for layer, compiled in zip(self.layers, self.compiled, strict=True):
            layer.forward = compiled
        try:
            yield
        finally:
            for layer in self.layers:
                vars(layer).pop("forward", None)
