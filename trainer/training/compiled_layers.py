"""The decoder layers' training forward compiled by torch.compile, on a CPU.

Most of a CPU step is elementwise work between the matmuls (norms, SiLU, rotary embeddings,
softmax, casts, residual adds, and each of their gradients), one pass over memory per op.
Inductor fuses it: on the demo rows a step took 0.86-0.90 s compiled against 1.13-1.20 s, with
16% less peak memory. Compiling costs 17-59 s the first time (once for the first batch shape,
once more for shapes of any length), a few seconds for a shape inductor's cache holds and most
of that for a new one, so a run compiles only when it is long enough to win that back
(``hardware.COMPILE_MIN_STEPS``, and ``COMPILE_MIN_STEPS_WARM`` for layers compiled before).
The cache lives under the tunesmith home (inductor's default is under /tmp, emptied by a
reboot), with a marker per kind of layer that a run has compiled there.

Only the training step runs the compiled forward: evaluation and validation's generation,
whose shapes change token by token, keep the eager one. The layers differ only in their
weights, so after the first layer's compile the others' are hits in inductor's cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch._dynamo
from torch import nn
from torch._dynamo.utils import counters
from torch._inductor.runtime.cache_dir_utils import default_cache_dir

from store.paths import ensure_private_dir, home_dir
from trainer.training.hardware import cpu_model

CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
"""Where inductor keeps what it compiled; a user's own setting is kept."""
CACHE_DIRNAME = "inductor"
"""The cache's folder under the tunesmith home."""
MARKERS_DIRNAME = "tunesmith-compiled"
"""The cache's folder of markers, one per kind of layer a run compiled."""
SHAPE_FIELDS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
)
"""The model config's fields that shape a decoder layer's graph."""


def compile_cache() -> Path:
    """Inductor's cache for a run's compile: the user's ``CACHE_ENV``, else under the home."""
    chosen = os.environ.get(CACHE_ENV)
    # Importing torch._dynamo sets the variable to inductor's default where it was unset.
    if chosen is None or Path(chosen).resolve() == Path(default_cache_dir()).resolve():
        return home_dir() / CACHE_DIRNAME
    return Path(chosen)


def use_compile_cache() -> Path:
    """Point inductor at ``compile_cache()``, before anything compiles, and return it."""
    cache = compile_cache()
    os.environ[CACHE_ENV] = str(cache)
    return cache


@dataclass(frozen=True)
class LayerKind:
    """What makes the compiled layers of a run the same as another's: the layer's shape (from
    the model's ``config``), the precision, the adapter (its method, rank, scale and dropout),
    this CPU and this torch. Nothing is worked out until asked: most runs never compile."""

    config: Any
    bf16: bool
    adapter: str

    def key(self) -> str:
        """The kind as a name for its marker."""
        shape = {name: getattr(self.config, name, None) for name in SHAPE_FIELDS}
        described = json.dumps(
            [shape, self.bf16, self.adapter, cpu_model(), torch.__version__],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(described.encode()).hexdigest()[:32]

    def marker(self) -> Path:
        """The file that says a run compiled layers of this kind into ``compile_cache()``."""
        return compile_cache() / MARKERS_DIRNAME / self.key()

    def compiled_before(self) -> bool:
        """Whether a run compiled layers of this kind into the cache."""
        return self.marker().is_file()

    def mark_compiled(self) -> None:
        """Note that layers of this kind were compiled, if this process compiled any (a failed
        compile ran eager and left the cache cold); a marker that cannot be written only means
        the next run compiles as if cold."""
        if not counters["frames"]["ok"]:
            return
        marker = self.marker()
        with contextlib.suppress(OSError):
            ensure_private_dir(marker.parent)
            marker.touch()


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
