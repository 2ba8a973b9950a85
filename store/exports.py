"""Writing examples out as chat-format JSONL that imports back to the same rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from store.atomic import atomic_text_file
from store.errors import InputError
from store.examples import Example, messages_to_json


def export_examples(path: Path, examples: Iterable[Example]) -> int:
    """Write ``examples`` to ``path`` as they come (a stream of a million is never held),
    replacing it whole, never half-written; return the count."""
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name such as examples.jsonl")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: no such folder")
    count = 0
    with atomic_text_file(path) as handle:
        for example in examples:
            record = {
                "messages": messages_to_json(example.messages),
                "split": example.split,
                "status": example.status,
                "tags": list(example.tags),
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count
