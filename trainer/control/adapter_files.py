"""Which files an adapter folder may hold: the one rule for loading, serving and exporting it.

Torch-free, so refusing a folder never waits for the ML stack to import.
"""

from __future__ import annotations

import json
from pathlib import Path

from store.errors import ModelError, NotFoundError

SAFE_ADAPTER_SUFFIXES = (".safetensors", ".json", ".jinja", ".md", ".txt", ".model")
"""File types an adapter folder may hold; anything else (a pickle) is refused before loading
and never exported."""


def check_adapter_folder(path: Path) -> None:
    """Refuse an adapter folder holding files that could run code when loaded (pickles)."""
    if not path.is_dir():
        raise NotFoundError(f"{path}: adapter folder not found")
    for child in path.iterdir():
        if child.is_symlink():
            raise ModelError(f"{child}: links are not allowed in an adapter folder")
        if child.is_file() and not child.name.endswith(SAFE_ADAPTER_SUFFIXES):
            raise ModelError(f"{child}: refusing to load (only safetensors and JSON are loaded)")


ADAPTER_CONFIG = "adapter_config.json"
"""The file that makes a folder a peft adapter; a full fine-tune's folder has none."""


def adapter_type(path: Path) -> str | None:
    """The peft type of the adapter in ``path`` (``LORA``, ``IA3``, ``PROMPT_TUNING``), or None
    for a folder without one (a full fine-tune's model)."""
    config = path / ADAPTER_CONFIG
    if not config.is_file():
        return None
    try:
        kind = json.loads(config.read_text(encoding="utf-8")).get("peft_type")
    except (OSError, ValueError, AttributeError) as error:
        raise ModelError(f"{config}: not an adapter's config ({error})") from error
    return str(kind or "LORA")
