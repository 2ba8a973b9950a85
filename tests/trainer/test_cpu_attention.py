"""Matmul attention as one autograd function: eager attention's output and gradients with
grouped key heads and padding, and eager's own path for what it does not cover."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from transformers.models.llama.modeling_llama import eager_attention_forward

import trainer.training.cpu_attention
from trainer.training.cpu_attention import AttentionFunction, cpu_attention


class Layer(nn.Module):
    """What eager attention reads of its layer: the query heads per key head."""

    num_key_value_groups = 3


def _inputs(dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    batch, heads, key_heads, length, size = 5, 6, 2, 11, 8
    # Laid out as attention's projections leave them: [batch, length, heads, size], transposed.
    query = torch.randn(batch, length, heads, size, generator=generator).transpose(1, 2)
    key = torch.randn(batch, length, key_heads, size, generator=generator).transpose(1, 2)
    value = torch.randn(batch, length, key_heads, size, generator=generator).transpose(1, 2)
    # Rows of different lengths, padded on the right, causal.
    lengths = torch.tensor([11, 7, 3, 11, 1])
    allowed = torch.ones(length, length, dtype=torch.bool).tril()[None] & (
        torch.arange(length)[None, None, :] < lengths[:, None, None]
    )
    mask = torch.zeros(batch, 1, length, length).masked_fill(
        ~allowed[:, None], torch.finfo(dtype).min
    )
    return query.to(dtype), key.to(dtype), value.to(dtype), mask.to(dtype)


@pytest.mark.parametrize(
    ("dtype", "tolerance"), [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)], ids=["fp32", "bf16"]
)
def test_the_function_gives_eager_attentions_output_and_gradients_over_uneven_chunks(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, tolerance: float
) -> None:
    # 2 rows a chunk: 5 rows make chunks of 2, 2 and 1.
    monkeypatch.setattr(trainer.training.cpu_attention, "SCORES_CHUNK_ELEMENTS", 2 * 6 * 11 * 11)
    query, key, value, mask = _inputs(dtype)
    grad = torch.randn(5, 11, 6, 8, generator=torch.Generator().manual_seed(1)).to(dtype)
    results = []
    for attention in (cpu_attention, eager_attention_forward):
        inputs = [tensor.clone().requires_grad_() for tensor in (query, key, value)]
        output, _ = attention(Layer(), inputs[0], inputs[1], inputs[2], mask, scaling=8**-0.5)
        output.backward(grad)
        results.append([output.detach()] + [tensor.grad for tensor in inputs])
    for got, expected in zip(*results, strict=True):
        assert got is not None and expected is not None
        assert got.shape == expected.shape and got.dtype == expected.dtype
        torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize(
    "setting",
    [{"dropout": 0.1}, {"sliding_window": 4}, {"softcap": 30.0}, {"mask": None}],
    ids=["dropout", "sliding window", "capped logits", "no mask"],
)
def test_what_the_function_does_not_cover_goes_to_eager_attention(
    monkeypatch: pytest.MonkeyPatch, setting: dict[str, Any]
) -> None:
    monkeypatch.setattr(AttentionFunction, "apply", lambda *args: pytest.fail("not eager"))
    query, key, value, mask = _inputs(torch.float32)
    arguments = {"dropout": 0.0, **setting}
    chosen_mask = arguments.pop("mask", mask)
    output, weights = cpu_attention(
        Layer(), query, key, value, chosen_mask, scaling=8**-0.5, **arguments
    )
    assert output.shape == (5, 11, 6, 8) and weights is not None
