"""LoRA's scale and add folded into one matmul: peft's function and gradients, and peft's own
forward wherever the fold does not apply."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import Linear as LoraLinear
from torch import nn

from trainer.training.fused_lora import fold_lora_scaling


class Block(nn.Module):
    """Two linear layers, as a transformer block's attention projections."""

    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(24, 40, bias=False)
        self.v_proj = nn.Linear(24, 16, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q_proj(x), self.v_proj(x)], dim=-1)


def _adapted(**settings: Any) -> Any:
    torch.manual_seed(0)
    config = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"], **settings}
    model = get_peft_model(Block(), LoraConfig(**config))
    for layer in model.modules():
        if isinstance(layer, LoraLinear):
            # peft starts B at zero; a trained adapter's B is not.
            up: Any = layer.lora_B["default"]
            nn.init.normal_(up.weight)
    return model


def _output_and_grads(
    model: Any, x: torch.Tensor, autocast: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        output = model(x)
    # A fixed weighting: the gradients then do not depend on how the output was rounded.
    weights = torch.linspace(-1, 1, output.numel()).view(output.shape)
    (output.float() * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return output.detach().float(), grads


def _peft_and_folded(
    model: Any, x: torch.Tensor, autocast: bool = False
) -> tuple[tuple[torch.Tensor, dict[str, torch.Tensor]], ...]:
    expected = _output_and_grads(model, x, autocast)
    assert fold_lora_scaling(model) == 2
    return expected, _output_and_grads(model, x, autocast)


def test_the_fold_gives_peft_s_output_and_gradients_in_fp32() -> None:
    model = _adapted()
    x = torch.randn(3, 5, 24)
    (output, grads), (folded, folded_grads) = _peft_and_folded(model, x)
    assert output.abs().max() > 1
    torch.testing.assert_close(folded, output, rtol=1e-6, atol=1e-6)
    assert folded_grads.keys() == grads.keys() and any("lora_A" in name for name in grads)
    for name, grad in grads.items():
        torch.testing.assert_close(folded_grads[name], grad, rtol=1e-5, atol=1e-6)


def test_under_bf16_autocast_over_bf16_base_weights_it_differs_by_rounding_only() -> None:
    model = _adapted()
    for layer in model.modules():
        if isinstance(layer, LoraLinear):
            layer.base_layer.bfloat16()
    x = torch.randn(3, 5, 24, dtype=torch.bfloat16)
    (output, grads), (folded, folded_grads) = _peft_and_folded(model, x, autocast=True)
    # addmm adds in its fp32 accumulator and rounds once: one bf16 step at most.
    torch.testing.assert_close(folded, output, rtol=2**-7, atol=2**-7)
    for name, grad in grads.items():
        torch.testing.assert_close(folded_grads[name], grad, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    "settings", [{"lora_dropout": 0.1}, {"use_dora": True}, {"lora_bias": True}]
)
def test_what_the_fold_cannot_express_runs_peft_s_forward(settings: dict[str, Any]) -> None:
    model = _adapted(**settings)
    model.eval()  # dropout off, so both passes compute the same function
    x = torch.randn(2, 3, 24)
    seen: list[int] = []
    original = LoraLinear.forward

    def counted(self: LoraLinear, *args: Any, **kwargs: Any) -> torch.Tensor:
        seen.append(1)
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LoraLinear, "forward", counted)
        (output, _), (folded, _) = _peft_and_folded(model, x)
    assert len(seen) == 4  # both layers, before the fold and after it
    torch.testing.assert_close(folded, output)


def test_disabled_adapters_and_mixed_dtypes_without_autocast_run_peft_s_forward() -> None:
    model = _adapted()
    fold_lora_scaling(model)
    x = torch.randn(2, 3, 24)
    with torch.no_grad(), model.disable_adapter():
        base = model(x)
        plain = model.get_base_model()
        expected = torch.cat([plain.q_proj.base_layer(x), plain.v_proj.base_layer(x)], dim=-1)
    torch.testing.assert_close(base, expected)
    # bf16 base weights and fp32 adapters outside autocast need peft's cast of the input.
    for layer in model.modules():
        if isinstance(layer, LoraLinear):
            layer.base_layer.bfloat16()
    with torch.no_grad():
        mixed = model(x.bfloat16())
    assert mixed.dtype == torch.bfloat16 and torch.isfinite(mixed).all()
