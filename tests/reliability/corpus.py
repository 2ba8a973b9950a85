"""The bad-input corpus's case: a broken file (or folder) and what importing it must do."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Refusal = Literal["file", "any"]
"""``file``: the whole file is refused in one line; ``any``: nothing in it is valid (binary)."""


@dataclass(frozen=True)
class Case:
    """One bad input: a file (or a folder ``build`` makes) and what importing it must do."""

    id: str
    name: str
    content: bytes
    valid: int
    """Rows in it that are valid and must all be stored."""
    rejected: tuple[int, ...] | Refusal
    """Line (or row) numbers that must each be rejected, or how the whole input is refused."""
    build: Callable[[Path], None] | None = None
    """Makes a folder at the path it is given, instead of writing ``content``."""


def good(tag: str, number: int) -> bytes:
    """A valid JSONL row, unique to its case."""
    return json.dumps({"prompt": f"{tag}: good row {number}", "response": "fine"}).encode()


def between(tag: str, bad: bytes, suffix: str = "jsonl") -> Case:
    """A JSONL file with ``bad`` as line 2 of 3: lines 1 and 3 must be kept."""
    content = good(tag, 1) + b"\n" + bad + b"\n" + good(tag, 3) + b"\n"
    return Case(tag, f"{tag}.{suffix}", content, valid=2, rejected=(2,))
