"""Writing examples out as chat-format JSONL that imports back to the same rows."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from store.errors import InputError
from store.examples import Example, messages_to_json


def export_examples(path: Path, examples: Sequence[Example]) -> int:
    """Write ``examples`` to ``path`` (replacing it whole, never half-written); return the count."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name such as examples.jsonl")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: no such folder")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            for example in examples:
                record = {
                    "messages": messages_to_json(example.messages),
                    "split": example.split,
                    "status": example.status,
                    "tags": list(example.tags),
                }
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(examples)
