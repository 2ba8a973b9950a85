"""Which files an adapter folder may hold: the one rule for loading, serving and exporting it.

Torch-free, so refusing a folder never waits for the ML stack to import.
"""

from __future__ import annotations

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
