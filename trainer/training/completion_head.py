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
from trainer.training.fused_norms import fuse_rms_norms
from trainer.training.hardware import Speedups

HEAD_CHUNK = 32768
"""Vocabulary columns per LM-head tile, as in TRL's fused head."""
PLAIN_HEAD_ELEMENTS = 32 * 1024 * 1024
"""Most logits (trained positions x vocabulary) scored by ``HeadScores``, which keeps their
softmax for the backward pass: 128 MiB in fp32 (8 rows of 80 answer tokens on a 49k vocabulary take
a sixth of it). Beyond that, TRL's chunked kernel recomputes them instead."""
HEAD_CHUNK_ELEMENTS = 2**19
"""Logits ``HeadScores`` works through at once (2 MiB in fp32, about 10 rows of the embedded
model's vocabulary): what the cores' own caches hold while five passes run over them."""
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
    ``PLAIN_HEAD_ELEMENTS``. Two things make it fast on a CPU, where everything but the two
    matmuls is a pass over memory:

    - The forward works through the logits a few rows at a time (``HEAD_CHUNK_ELEMENTS``), so
      that the upcast, log-softmax, exp, entropy and argmax of a chunk read what is still in
      the core's cache, in fp32 whatever the autocast around it.
    - It keeps the softmax (the bulk of the gradient, ``onehot - softmax``, scaled per row) in
      the logits' own buffer and dtype, with each target's entry zeroed, and the backward
      never rewrites it: each row's scale is applied to the matmul's far smaller result, and
      each target's exact ``1 - p`` is added from the weight's (or rows') own rows.

    On a 2-core Intel Xeon with AMX, 251 answer tokens on the embedded model's 49k vocabulary,
    forward and backward in bf16: 47 ms against 141 for the whole logits at once (the two
    matmuls alone take 22).
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
        log_probs = logits.new_empty(len(targets), dtype=torch.float32)
        entropy = torch.empty_like(log_probs)
        is_top1 = torch.empty_like(targets, dtype=torch.bool)
        step = max(1, HEAD_CHUNK_ELEMENTS // logits.shape[1])
        with torch.autocast(logits.device.type, enabled=False):
            for start in range(0, len(targets), step):
                part, target = slice(start, start + step), targets[start : start + step, None]
                log_softmax = torch.log_softmax(logits[part].float(), dim=-1)
                log_probs[part] = log_softmax.gather(-1, target).squeeze(-1)
                is_top1[part] = log_softmax.argmax(-1) == target.squeeze(-1)
                softmax = log_softmax.exp()
                entropy[part] = -torch.linalg.vecdot(softmax, log_softmax)
                logits[part] = softmax.scatter_(-1, target, 0.0)
        ctx.save_for_backward(rows, weight, targets, logits, log_probs.exp())
        ctx.has_bias = bias is not None
        ctx.mark_non_differentiable(entropy, is_top1)
        return log_probs, entropy, is_top1

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, grad_log_probs: torch.Tensor, *_: Any
    ) -> tuple[torch.Tensor | None, ...]:
        rows, weight, targets, others, target_probs = ctx.saved_tensors
        # Under autocast the logits (so ``others``) can be bf16 beside fp32 rows and weight: the
        # backward runs outside autocast, in the widest of their dtypes (no cast in a bf16 run).
        dtype = functools.reduce(torch.promote_types, (rows.dtype, weight.dtype, others.dtype))
        rows, weight, others = rows.to(dtype), weight.to(dtype), others.to(dtype)
        # d log p(target) / d logits = onehot(target) - softmax: -g * softmax off each target
        # (kept in ``others``), g * (1 - p) on it.
        off = -grad_log_probs[:, None].to(dtype)
        on = (grad_log_probs * (1 - target_probs))[:, None].to(dtype)
        needs_rows, needs_weight, needs_bias, _ = ctx.needs_input_grad
        grad_rows = grad_weight = grad_bias = None
        if needs_rows:
            grad_rows = torch.addcmul((others @ weight) * off, on, weight[targets])
        if needs_weight:
            grad_weight = (others.T @ (rows * off)).index_add_(0, targets, rows * on)
        if needs_bias and ctx.has_bias:
            grad_bias = (others.T @ off).squeeze(-1).index_add_(0, targets, on.squeeze(-1))
        return grad_rows, grad_weight, grad_bias, None


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
        if speed.fused_norms:
            fuse_rms_norms(base)
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
