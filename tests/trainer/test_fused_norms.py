"""Llama's RMSNorm as one autograd function: LlamaRMSNorm's values and gradients, and only
norms whose forward is Llama's get it."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm

from trainer.training.fused_norms import fuse_rms_norms


def _norm_pair(dtype: torch.dtype) -> tuple[LlamaRMSNorm, LlamaRMSNorm]:
    plain = LlamaRMSNorm(48, eps=1e-5)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 1.5)
    fused = LlamaRMSNorm(48, eps=1e-5)
    fused.load_state_dict(plain.state_dict())
    assert fuse_rms_norms(fused) == 1
    return plain.to(dtype), fused.to(dtype)


@pytest.mark.parametrize(
    ("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)], ids=["fp32", "bf16"]
)
def test_the_fused_norm_gives_llamas_values_and_gradients(
    dtype: torch.dtype, tolerance: float
) -> None:
    plain, fused = _norm_pair(dtype)
    generator = torch.Generator().manual_seed(0)
    # Rows of very different scales: the normalising must not lose the small ones.
    x = torch.randn(3, 7, 48, generator=generator) * torch.logspace(-3, 2, 7)[None, :, None]
    x = x.to(dtype)
    grad = torch.randn(3, 7, 48, generator=generator).to(dtype)
    results = []
    for norm in (plain, fused):
        inputs = x.clone().requires_grad_()
        output = norm(inputs)
        output.backward(grad)
        assert inputs.grad is not None and norm.weight.grad is not None
        results.append((output.detach(), inputs.grad, norm.weight.grad))
        # The input is left as it was (the fp32 normalising runs on a copy).
        assert torch.equal(inputs.detach(), x)
    for got, expected in zip(*results, strict=True):
        assert got.dtype == expected.dtype
        # Within a few roundings: autograd sums in another order.
        torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)
    # The forward is Llama's to the bit: the same ops in the same precision.
    assert torch.equal(results[0][0], results[1][0])


def test_a_frozen_norm_computes_no_weight_gradient() -> None:
    _, fused = _norm_pair(torch.bfloat16)
    fused.weight.requires_grad_(False)
    x = torch.randn(2, 5, 48, dtype=torch.bfloat16, requires_grad=True)
    fused(x).sum().backward()
    assert x.grad is not None and fused.weight.grad is None


def test_only_norms_whose_forward_is_llamas_are_fused() -> None:
    model = nn.ModuleList([LlamaRMSNorm(8), Qwen2RMSNorm(8), GemmaRMSNorm(8), nn.LayerNorm(8)])
    assert fuse_rms_norms(model) == 2
    assert ["forward" in vars(module) for module in model] == [True, True, False, False]
