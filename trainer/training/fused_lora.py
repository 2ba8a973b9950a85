"""LoRA's scale and add folded into one matmul in a training step.

peft's ``lora.Linear`` computes ``base(x) + lora_B(lora_A(x)) * scaling``: after its two thin
matmuls, a multiply and an add over the whole output ([tokens, out_features]), on each of the
seven adapted layers of every block. Scaling ``lora_B``'s weight (rank x out_features, a few
thousand values) instead and accumulating onto the base output in the matmul (``addmm_``)
gives the same function and the same gradients with two passes over the output fewer: 1.05-1.09x
a training step on the demo rows. With the default alpha of twice the rank the scale is 2, a
power of two, so the scaled weight is exact; under autocast the sum is rounded to bf16 once
instead of twice.

The fold applies only where peft's forward would take its plain path (one active LoRA adapter,
not merged, no DoRA, no dropout, no LoRA bias) and where the dtypes allow it without peft's
input cast: under autocast (a bf16 training step) or with base and adapter in one dtype (fp32).
Anything else goes to peft's own forward, unchanged.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from peft.tuners.lora import Linear as LoraLinear
from torch import nn


def fold_lora_scaling(model: nn.Module) -> int:
    """Give every plain LoRA linear layer of ``model`` the folded forward; returns how many."""
    layers = [module for module in model.modules() if isinstance(module, LoraLinear)]
    for layer in layers:
        layer.forward = types.MethodType(_folded_forward, layer)  # type: ignore[method-assign]
    return len(layers)


def _folded(layer: LoraLinear, x: torch.Tensor, kwargs: dict[str, Any]) -> str | None:
    """The adapter whose forward can be folded, or None where peft's own path must run."""
    if kwargs or layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    name: str = layer.active_adapters[0]
    if name not in layer.lora_A or name in layer.lora_variant:
        return None
    if not isinstance(layer.lora_dropout[name], nn.Identity) or layer.lora_B[name].bias is not None:
        return None
    base = layer.get_base_layer()
    if not isinstance(base, nn.Linear):
        return None
    if torch.is_autocast_enabled(x.device.type):
        return name
    same = {x.dtype, base.weight.dtype, layer.lora_A[name].weight.dtype}
    return name if len(same) == 1 else None


def _folded_forward(self: LoraLinear, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    name = None if args else _folded(self, x, kwargs)
    if name is None:
        return LoraLinear.forward(self, x, *args, **kwargs)
    rows = x.reshape(-1, x.shape[-1])
    result: torch.Tensor = self.base_layer(rows)
    up = (self.lora_B[name].weight * self.scaling[name]).to(result.dtype)
    # In place: the base layer's backward needs its input and weight, not its output.
    result.addmm_(self.lora_A[name](rows).to(result.dtype), up.T)
    return result.view(*x.shape[:-1], result.shape[-1])
