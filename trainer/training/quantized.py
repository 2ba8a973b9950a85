"""The base model with 4-bit weights, for a QLoRA run."""

from __future__ import annotations

import importlib.util

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from trainer.control.distributed import current_rank
from trainer.models import resolve_base_model
from trainer.training.reporting import TrainingFailed, log


def load_4bit_model(
    base_model: str, device: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model with 4-bit NF4 weights for QLoRA; CUDA and bitsandbytes only."""
    if device != "cuda":
        raise TrainingFailed("--qlora needs a CUDA GPU (4-bit weights); this machine has none")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainingFailed("--qlora needs the bitsandbytes package: pip install bitsandbytes")
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    source = resolve_base_model(base_model, log)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    model = AutoModelForCausalLM.from_pretrained(
        source, quantization_config=quantization, device_map={"": current_rank().local_rank}
    )
    return prepare_model_for_kbit_training(model), AutoTokenizer.from_pretrained(source)
