"""Answers from a base model and any number of run adapters, on one copy of the base weights."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import (
    AutoModelForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TextIteratorStreamer,
)

from store.errors import ModelError, NotFoundError

BASE_MODEL_NAME = "base"
"""The model name that answers with every adapter disabled."""

SAFE_ADAPTER_SUFFIXES = (".safetensors", ".json", ".jinja", ".md", ".txt", ".model")
"""File types an adapter folder may hold; anything else (a pickle) is refused before loading."""


def run_model_name(run_id: int) -> str:
    """The model name under which run ``run_id``'s adapter answers."""
    return f"run-{run_id}"


def check_adapter_folder(path: Path) -> None:
    """Refuse an adapter folder holding files that could run code when loaded (pickles)."""
    if not path.is_dir():
        raise NotFoundError(f"{path}: adapter folder not found")
    for child in path.iterdir():
        if child.is_symlink():
            raise ModelError(f"{child}: links are not allowed in an adapter folder")
        if child.is_file() and not child.name.endswith(SAFE_ADAPTER_SUFFIXES):
            raise ModelError(f"{child}: refusing to load (only safetensors and JSON are loaded)")


class ModelPool:
    """One base model with named adapters; generation is serialized by a lock."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._base = model.eval()
        self._peft: PeftModel | None = None
        self._full_models: dict[str, PreTrainedModel] = {}
        self.lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """Every model name this pool answers to."""
        adapters = list(self._peft.peft_config) if self._peft is not None else []
        return [BASE_MODEL_NAME, *adapters, *self._full_models]

    def attach(self, name: str, folder: Path) -> None:
        """Make the adapter (or full fine-tuned model) in ``folder`` answer as ``name``."""
        if name in self.names:
            return
        check_adapter_folder(folder)
        if not (folder / "adapter_config.json").is_file():
            # A full fine-tune: its own weights, loaded from safetensors only.
            self._full_models[name] = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, use_safetensors=True
            ).eval()
            return
        with self.lock:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(
                    self._base, str(folder), adapter_name=name, is_trainable=False
                ).eval()
            else:
                self._peft.load_adapter(str(folder), adapter_name=name, is_trainable=False)

    @contextlib.contextmanager
    def selected(self, name: str) -> Iterator[Any]:
        """The model that answers as ``name``; hold ``lock`` around this."""
        if name in self._full_models:
            yield self._full_models[name]
        elif name == BASE_MODEL_NAME:
            if self._peft is None:
                yield self._base
            else:
                with self._peft.disable_adapter():
                    yield self._peft
        elif self._peft is not None and name in self._peft.peft_config:
            self._peft.set_adapter(name)
            yield self._peft
        else:
            raise NotFoundError(f"no model named {name!r} (models: {', '.join(self.names)})")

    def encode(self, conversations: list[list[dict[str, str]]]) -> dict[str, torch.Tensor]:
        """Chat-templated, left-padded inputs ready for ``generate``."""
        texts = [
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            for messages in conversations
        ]
        self.tokenizer.padding_side = "left"
        encoded: dict[str, torch.Tensor] = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=False
        )
        return encoded

    def generate(
        self,
        name: str,
        conversations: list[list[dict[str, str]]],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
    ) -> list[str]:
        """Answers to several conversations at once, greedy unless ``temperature`` > 0."""
        inputs = self.encode(conversations)
        with self.lock, self.selected(name) as model, torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                **_sampling(temperature),
            )
        prompt_length = inputs["input_ids"].shape[1]
        return [
            str(self.tokenizer.decode(row[prompt_length:], skip_special_tokens=True)).strip()
            for row in output
        ]

    def stream(
        self,
        name: str,
        messages: list[dict[str, str]],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """Text pieces of one answer as they are generated."""
        inputs = self.encode([messages])
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600
        )
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                with self.selected(name) as model, torch.inference_mode():
                    model.generate(
                        **inputs,
                        max_new_tokens=max_new_tokens,
                        pad_token_id=self.tokenizer.pad_token_id,
                        streamer=streamer,
                        **_sampling(temperature),
                    )
            except BaseException as error:
                failure.append(error)
                streamer.end()

        with self.lock:
            if name not in self.names:
                raise NotFoundError(f"no model named {name!r} (models: {', '.join(self.names)})")
            worker = threading.Thread(target=produce, daemon=True)
            worker.start()
            yield from streamer
            worker.join()
        if failure:
            raise ModelError(f"generation failed: {failure[0]}")


def _sampling(temperature: float) -> dict[str, Any]:
    if temperature <= 0:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": temperature}
