"""GGUF files that llama.cpp and Ollama load: a Llama-architecture model, or a LoRA adapter.

Written with the ``gguf`` package's writer, in llama.cpp's layout:

- tensors under llama.cpp's names (``blk.N.attn_q.weight``), from the ``gguf`` package's
  name map, the same one transformers' GGUF reader inverts;
- the query and key rows of each head reordered: Hugging Face keeps the two halves of each
  rotary pair apart (the first half of a head, then the second), llama.cpp wants each pair
  side by side;
- norms in f32, matrices in f16 or q8_0 (a matrix whose rows do not split into q8_0's blocks of
  32 stays f16), as llama.cpp's converter does;
- the byte-level BPE vocabulary (tokens, their types, merges, special token ids, whether BOS
  or EOS is added) and the chat template as metadata.

Tensors are converted and written one at a time, so the file costs no second copy of the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch

from store.errors import ModelError
from trainer.control.modelfile import GgufQuant

StatusCallback = Callable[[str], None]

_FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}
_F16_MAX = float(np.finfo(np.float16).max)
_Q8_0_BLOCK = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0]
_ROTARY_TENSORS = {"attn_q": "heads", "attn_k": "kv_heads"}
"""The tensors whose rows are reordered, and the head count that splits them."""

# How llama.cpp names a pre-tokenizer (``tokenizer.ggml.pre``), by the shape it has in a
# tokenizer.json; llama.cpp refuses a name it does not know.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT2 = {"type": "ByteLevel", "use_regex": True}
_DIGITS = {"type": "Digits", "individual_digits": True}
_PRE_TOKENIZERS: list[tuple[str, list[dict[str, Any]]]] = [
    ("gpt-2", [_GPT2]),
    ("smollm", [_DIGITS, _GPT2]),
    (
        "llama-bpe",
        [
            {"type": "Split", "pattern": {"Regex": _LLAMA3_SPLIT}},
            {"type": "ByteLevel", "use_regex": False},
        ],
    ),
]


@dataclass(frozen=True)
class LlamaShape:
    """The hyperparameters of a Llama-architecture model that a GGUF file states."""

    blocks: int
    context: int
    embedding: int
    feed_forward: int
    heads: int
    kv_heads: int
    head_dim: int
    rms_eps: float
    rope_theta: float
    vocab_size: int
    tied_embeddings: bool


def llama_shape(config: Any) -> LlamaShape:
    """The shape of a transformers config; a model llama.cpp would run differently is refused."""
    if config.model_type != "llama":
        raise ModelError(
            f"GGUF export supports Llama-architecture models; this base is {config.model_type!r}"
        )
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise ModelError(f"GGUF export does not write {rope_type!r} rope scaling yet")
    heads = int(config.num_attention_heads)
    return LlamaShape(
        blocks=int(config.num_hidden_layers),
        context=int(config.max_position_embeddings),
        embedding=int(config.hidden_size),
        feed_forward=int(config.intermediate_size),
        heads=heads,
        kv_heads=int(config.num_key_value_heads or heads),
        head_dim=int(getattr(config, "head_dim", None) or config.hidden_size // heads),
        rms_eps=float(config.rms_norm_eps),
        rope_theta=float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))),
        vocab_size=int(config.vocab_size),
        tied_embeddings=bool(config.tie_word_embeddings),
    )


@dataclass(frozen=True)
class Vocabulary:
    """A byte-level BPE tokenizer as GGUF metadata."""

    pre: str
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    special_ids: dict[str, int]
    """``bos``, ``eos``, ``unk``, ``pad``: those the tokenizer has."""
    add_bos: bool
    add_eos: bool
    chat_template: str | None

    @property
    def special_tokens(self) -> list[str]:
        """The control tokens (``<|im_end|>``), as text."""
        control = gguf.TokenType.CONTROL
        return [t for t, kind in zip(self.tokens, self.token_types, strict=True) if kind == control]


def vocabulary(tokenizer: Any, vocab_size: int, *, pre: str | None = None) -> Vocabulary:
    """The GGUF vocabulary of a transformers tokenizer, padded to the model's ``vocab_size``.

    ``pre`` names the pre-tokenizer where the tokenizer no longer shows it (a tokenizer read
    back from a GGUF file keeps only the regex, not llama.cpp's name).
    """
    described = json.loads(tokenizer.backend_tokenizer.to_str())
    model = described.get("model") or {}
    if model.get("type") != "BPE" or not _is_byte_level(described):
        raise ModelError(
            "GGUF export supports byte-level BPE tokenizers (GPT-2 style); this one is"
            f" {model.get('type')!r}"
        )
    spelled: dict[int, str] = {index: token for token, index in model["vocab"].items()}
    added = {entry["id"]: entry for entry in described.get("added_tokens", [])}
    spelled.update({index: entry["content"] for index, entry in added.items()})
    if max(spelled) >= vocab_size:
        raise ModelError(
            f"the tokenizer has {max(spelled) + 1} tokens, more than the model's {vocab_size}"
        )
    tokens: list[str] = []
    token_types: list[int] = []
    for index in range(vocab_size):
        if index not in spelled:
            tokens.append(f"[PAD{index}]")
            token_types.append(gguf.TokenType.UNUSED)
        elif index in added:
            tokens.append(spelled[index])
            special = added[index].get("special", False)
            token_types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(spelled[index])
            token_types.append(gguf.TokenType.NORMAL)
    special_ids = {
        kind: int(token_id)
        for kind, token_id in (
            ("bos", tokenizer.bos_token_id),
            ("eos", tokenizer.eos_token_id),
            ("unk", tokenizer.unk_token_id),
            ("pad", tokenizer.pad_token_id),
        )
        if token_id is not None
    }
    # Whether the tokenizer adds BOS or EOS is seen in what it does, not in its settings.
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    framed = tokenizer("a")["input_ids"]
    template = tokenizer.chat_template
    return Vocabulary(
        pre=pre or pre_tokenizer_name(described.get("pre_tokenizer")),
        tokens=tokens,
        token_types=[int(kind) for kind in token_types],
        merges=_merges(model.get("merges") or []),
        special_ids=special_ids,
        add_bos="bos" in special_ids and framed[:1] == [special_ids["bos"]] != plain[:1],
        add_eos="eos" in special_ids and framed[-1:] == [special_ids["eos"]] != plain[-1:],
        chat_template=template if isinstance(template, str) else None,
    )


def pre_tokenizer_name(pre_tokenizer: Mapping[str, Any] | None) -> str:
    """llama.cpp's name for a tokenizer.json pre-tokenizer; one it has no name for is refused."""
    steps = list((pre_tokenizer or {}).get("pretokenizers", [pre_tokenizer or {}]))
    for name, expected in _PRE_TOKENIZERS:
        if len(steps) == len(expected) and all(
            all(step.get(key) == value for key, value in want.items())
            for step, want in zip(steps, expected, strict=True)
        ):
            return name
    shape = ", ".join(str(step.get("type")) for step in steps)
    raise ModelError(
        f"llama.cpp has no name for this tokenizer's pre-tokenizer ({shape}); known:"
        f" {', '.join(name for name, _ in _PRE_TOKENIZERS)}"
    )


def _is_byte_level(described: Mapping[str, Any]) -> bool:
    return "ByteLevel" in json.dumps(described.get("pre_tokenizer")) or (
        (described.get("decoder") or {}).get("type") == "ByteLevel"
    )


def _merges(merges: Iterable[str | list[str]]) -> list[str]:
    """Merges as GGUF holds them: ``"left right"``, one string each."""
    written: list[str] = []
    for merge in merges:
        if isinstance(merge, str):
            written.append(merge)
            continue
        if any(" " in part for part in merge):
            raise ModelError(f"merge {merge!r} holds a space; this is not a byte-level vocabulary")
        written.append(" ".join(merge))
    return written


def write_model(
    path: Path,
    state_dict: Mapping[str, torch.Tensor],
    shape: LlamaShape,
    words: Vocabulary,
    *,
    quant: GgufQuant,
    name: str,
    on_status: StatusCallback,
) -> None:
    """Write a Llama model, its vocabulary and chat template, as one GGUF file at ``path``."""
    writer = gguf.GGUFWriter(path, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_file_type(_FILE_TYPES[quant])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_vocab_size(shape.vocab_size)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.embedding)
    writer.add_block_count(shape.blocks)
    writer.add_feed_forward_length(shape.feed_forward)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_key_length(shape.head_dim)
    writer.add_value_length(shape.head_dim)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    _add_vocabulary(writer, words)
    tensors = {
        gguf_name: (tensor, _storage(tensor, quant))
        for gguf_name, tensor in _gguf_tensors(state_dict, shape)
    }
    _write_tensors(writer, tensors, on_status)


def write_lora(
    path: Path,
    adapter: Mapping[str, torch.Tensor],
    shape: LlamaShape,
    *,
    alpha: float,
    name: str,
    on_status: StatusCallback,
) -> None:
    """Write a LoRA adapter in f16 as llama.cpp's GGUF adapter: each pair of matrices under
    the name of the weight it changes, ``.lora_a`` and ``.lora_b``.

    ``adapter`` maps a base weight's transformers name to its ``lora_a`` and ``lora_b`` under
    ``NAME.lora_a`` / ``NAME.lora_b``. llama.cpp scales each pair by ``alpha / rank``, as peft
    does.
    """
    writer = gguf.GGUFWriter(path, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    tensors: dict[str, tuple[torch.Tensor, gguf.GGMLQuantizationType]] = {}
    for base_name in sorted({key.rsplit(".", 1)[0] for key in adapter}):
        gguf_name = _gguf_name(base_name, shape)
        lora_a = adapter[f"{base_name}.lora_a"]
        # Only B's rows are the weight's output rows, so only B is reordered for rotary.
        lora_b = _llama_cpp_rows(gguf_name, adapter[f"{base_name}.lora_b"], shape)
        tensors[f"{gguf_name}.lora_a"] = (lora_a, gguf.GGMLQuantizationType.F16)
        tensors[f"{gguf_name}.lora_b"] = (lora_b, gguf.GGMLQuantizationType.F16)
    _write_tensors(writer, tensors, on_status)


def _add_vocabulary(writer: gguf.GGUFWriter, words: Vocabulary) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(words.pre)
    writer.add_token_list(words.tokens)
    writer.add_token_types(words.token_types)
    writer.add_token_merges(words.merges)
    for kind, token_id in words.special_ids.items():
        getattr(writer, f"add_{kind}_token_id")(token_id)
    writer.add_add_bos_token(words.add_bos)
    writer.add_add_eos_token(words.add_eos)
    writer.add_add_space_prefix(False)
    if words.chat_template:
        writer.add_chat_template(words.chat_template)


def _gguf_tensors(
    state_dict: Mapping[str, torch.Tensor], shape: LlamaShape
) -> Iterable[tuple[str, torch.Tensor]]:
    for hf_name, tensor in state_dict.items():
        if hf_name == "lm_head.weight" and shape.tied_embeddings:
            continue  # llama.cpp reuses the embedding when the file has no output matrix
        gguf_name = _gguf_name(hf_name, shape)
        yield gguf_name, _llama_cpp_rows(gguf_name, tensor, shape)


def _gguf_name(hf_name: str, shape: LlamaShape) -> str:
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, shape.blocks)
    gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
    if gguf_name is None:
        raise ModelError(f"{hf_name}: llama.cpp's Llama models have no such tensor")
    return gguf_name


def _llama_cpp_rows(gguf_name: str, tensor: torch.Tensor, shape: LlamaShape) -> torch.Tensor:
    """``tensor`` with each head's rotary pairs side by side where ``gguf_name`` needs it."""
    kind = gguf_name.split(".")[2] if gguf_name.startswith("blk.") else ""
    if kind not in _ROTARY_TENSORS:
        return tensor
    heads: int = getattr(shape, _ROTARY_TENSORS[kind])
    rows = tensor.shape[0]
    return (
        tensor.reshape(heads, 2, rows // heads // 2, *tensor.shape[1:])
        .transpose(1, 2)
        .reshape(tensor.shape)
    )


def _storage(tensor: torch.Tensor, quant: GgufQuant) -> gguf.GGMLQuantizationType:
    if tensor.dim() < 2:
        return gguf.GGMLQuantizationType.F32
    if quant == "q8_0" and tensor.shape[-1] % _Q8_0_BLOCK == 0:
        return gguf.GGMLQuantizationType.Q8_0
    return gguf.GGMLQuantizationType.F16


def _write_tensors(
    writer: gguf.GGUFWriter,
    tensors: Mapping[str, tuple[torch.Tensor, gguf.GGMLQuantizationType]],
    on_status: StatusCallback,
) -> None:
    """Lay out every tensor in the header, then convert and write them one by one."""
    try:
        for gguf_name, (tensor, storage) in tensors.items():
            byte_shape = gguf.quant_shape_to_byte_shape(tuple(tensor.shape), storage)
            nbytes = int(np.prod(byte_shape))
            writer.add_tensor_info(
                gguf_name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=storage
            )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        step = max(1, len(tensors) // 10)
        for number, (gguf_name, (tensor, storage)) in enumerate(tensors.items(), start=1):
            values = tensor.detach().to(device="cpu", dtype=torch.float32).numpy()
            if storage != gguf.GGMLQuantizationType.F32 and np.abs(values).max() > _F16_MAX:
                raise ModelError(f"{gguf_name}: holds values too large for f16")
            writer.write_tensor_data(gguf.quantize(values, storage).view(np.uint8))
            if number % step == 0 or number == len(tensors):
                on_status(f"Wrote {number}/{len(tensors)} tensors")
    finally:
        writer.close()
