"""A fork of TRL's fused LM head that projects only the trained positions, on any device.

It follows ``add_fused_lm_head`` in ``trl/trainer/utils.py`` of TRL 1.16.0: the same patched
``forward``, the same ``ChunkedLogProbFunction`` call and the same ``FusedCausalLMOutput``, minus
what only models with a scaled, capped or routed head need (those keep TRL's own head, see
``plain_head``). TRL scores only the labelled positions under Triton; this does so everywhere,
and scores a batch small enough with ``HeadScores`` instead of the kernel.
"""

from __future__ import annotations

import contextlib
import functools
import types
from typing import Any

import torch
from peft import PeftModel, PeftType
from peft.helpers import disable_input_dtype_casting
from transformers import PreTrainedModel
from trl import SFTTrainer
from trl.kernels import ChunkedLogProbFunction
from trl.trainer.utils import FusedCausalLMOutput

from trainer.training.compiled_layers import CompiledLayers
from trainer.training.fused_lora import fold_lora_scaling
from trainer.training.hardware import Speedups

HEAD_CHUNK = 32768
"""Vocabulary columns per LM-head tile, as in TRL's fused head."""
PLAIN_HEAD_ELEMENTS = 32 * 1024 * 1024
"""Most logits (trained positions x vocabulary) scored by ``HeadScores``, which keeps their
softmax for the backward pass: 128 MiB in fp32 (8 rows of 80 answer tokens on a 49k vocabulary take
a sixth of it). Beyond that, TRL's chunked kernel recomputes them instead."""
SCALED_HEAD_SETTINGS = (
    "final_logit_softcapping",
    "logit_scale",
    "output_multiplier",
    "lm_head_multiplier",
    "logits_scaling",
    "output_router_logits",
)
"""Config fields of models whose head scales or caps its logits, or that add a router loss:
these keep TRL's own fused head, which handles them."""


def plain_head(config: Any) -> bool:
    """Whether a model's logits are its last hidden state times the head, and nothing else."""
    text = config.get_text_config()
    return text is config and all(
        getattr(text, name, None) in (None, False) for name in SCALED_HEAD_SETTINGS
    )


class HeadScores(torch.autograd.Function):
    """Log-probability of each target (with gradients), and the entropy and top-1 hit of each row,
    from the rows, the head's weight and bias.

    The logits are kept for the backward pass instead of recomputed as in TRL's chunked kernel:
    twice as fast on a CPU, for their memory, which the caller bounds with
    ``PLAIN_HEAD_ELEMENTS``. What is kept is the softmax, which is most of the gradient
    (``onehot - softmax``, scaled): the backward turns it into the gradient in place, where
    plain autograd zero-filled a logits-sized buffer for the gather and ran log-softmax's
    backward, and the entropy is a batched dot product instead of a product the size of the
    logits. On a 2-core AMD EPYC, the head of 251 answer tokens on the embedded model's 49k
    vocabulary, forward and backward: 157 ms against 205 in bf16, 298 against 343 in fp32.
    """

    @staticmethod
    def forward(
        ctx: Any,
        rows: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = rows @ weight.T
        if bias is not None:
            logits = logits + bias
        log_softmax = torch.log_softmax(logits, dim=-1, dtype=torch.float32)
        del logits
        log_probs = log_softmax.gather(-1, targets[:, None]).squeeze(-1)
        is_top1 = log_softmax.argmax(-1) == targets
        softmax = log_softmax.exp()
        # A batched dot product: no buffer the size of the logits for the products.
        entropy = -(softmax[:, None, :] @ log_softmax[:, :, None]).view(-1)
        ctx.save_for_backward(rows, weight, targets, softmax)
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(entropy, is_top1)
        return log_probs, entropy, is_top1

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, grad_log_probs: torch.Tensor, *_: Any
    ) -> tuple[torch.Tensor | None, ...]:
        rows, weight, targets, softmax = ctx.saved_tensors
        # d log p(target) / d logits = onehot(target) - softmax, built in the kept softmax.
        grad = softmax.mul_(-grad_log_probs[:, None])
        grad[torch.arange(len(targets), device=grad.device), targets] += grad_log_probs
        grad_logits = grad.to(rows.dtype)
        needs_rows, needs_weight, needs_bias, _ = ctx.needs_input_grad
        return (
            grad_logits @ weight if needs_rows else None,
            grad_logits.T @ rows if needs_weight else None,
            grad_logits.sum(0) if needs_bias and ctx.has_bias else None,
            None,
        )


def score_completions_only(model: PreTrainedModel) -> None:
    """Make ``model(..., fused_lm_head=True)`` project only the trained positions.

    TRL's fused head projects only positions with a label where Triton runs; elsewhere it
    projects every position, prompt and padding included. On the embedded model (vocabulary
    49152, hidden 576) that head was half of a CPU step, and the prompts are most of a row.
    Loss, entropy and accuracy are TRL's, from the same kernel on fewer rows. Patched on
    ``forward`` like TRL's head, so a DDP-wrapped model still syncs its gradients.
    """
    fused_forward = model.forward

    @functools.wraps(type(model).forward)
    def forward(
        self: PreTrainedModel,
        *args: Any,
        fused_lm_head: bool = False,
        labels: torch.Tensor | None = None,
        shift_labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs: Any,
    ) -> Any:
        if not fused_lm_head or labels is None or shift_labels is not None:
            return fused_forward(
                *args,
                fused_lm_head=fused_lm_head,
                labels=labels,
                shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch,
                **kwargs,
            )
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        mask = targets != -100
        head = self.get_output_embeddings()
        rows, trained = hidden[mask], targets[mask]
        if rows.shape[0] * head.weight.shape[0] <= PLAIN_HEAD_ELEMENTS:
            log_probs, entropy, is_top1 = HeadScores.apply(rows, head.weight, head.bias, trained)
        else:
            log_probs, entropy, _, _, is_top1 = ChunkedLogProbFunction.apply(
                rows,
                head.weight,
                head.bias,
                trained,
                1.0,
                HEAD_CHUNK,
                None,
                1.0,
                ("log_probs", "entropy", "is_top1"),
            )
        # Back to [batch, length - 1], zero where nothing is trained, as TRL's metrics expect.
        log_probs, entropy, is_top1 = (
            values.new_zeros(mask.shape).masked_scatter(mask, values)
            for values in (log_probs, entropy, is_top1)
        )
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count,
            log_probs=log_probs,
            entropy=entropy,
            is_top1=is_top1,
            label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)


class FastSFTTrainer(SFTTrainer):
    """An SFTTrainer with the speedups TRL leaves off on this machine (``speed``)."""

    def __init__(self, *args: Any, speed: Speedups, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base: Any = self.model.get_base_model() if isinstance(self.model, PeftModel) else self.model
        if speed.completion_head and plain_head(base.config):
            score_completions_only(base)
        self.speed = speed
        # Only LoRA layers cast their input to the adapter's dtype (IA3 and prompt tuning have
        # no such switch).
        self._lora = isinstance(self.model, PeftModel) and self.model.peft_type == PeftType.LORA
        # Which runs fold and compile is choose_speedups' to say (LoRA's own layers only).
        if speed.folded_lora:
            fold_lora_scaling(base)
        self._compiled = CompiledLayers(base) if speed.compiled_layers else None

    def training_step(self, model: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:
        # Under autocast peft's cast of each LoRA input to the adapter's fp32 is undone at once
        # by autocast's cast back to bf16 for the matmul (1.06x a step on the demo rows).
        # Outside training (generation without autocast) the cast is needed and stays.
        compiled = self._compiled.active() if self._compiled else contextlib.nullcontext()
        with (
            disable_input_dtype_casting(model, active=self.speed.bf16_weights and self._lora),
            compiled,
        ):
            loss: torch.Tensor = super().training_step(model, *args, **kwargs)
        return loss
