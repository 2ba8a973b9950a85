"""A run's frozen data: the approved rows written to its folder as JSONL (no torch here)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.atomic import atomic_text_file
from store.examples import Example, messages_to_json

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"


@dataclass(frozen=True)
class Snapshot:
    """What a run trains and evaluates on."""

    train_rows: int
    eval_rows: int
    digest: str


def write_snapshot(
    run_dir: Path, train: Iterable[Example], evaluation: Iterable[Example]
) -> Snapshot:
    """Write the train and eval rows into ``run_dir`` as they come (a million are never
    held); the digest covers both files."""
    hasher = hashlib.sha256()
    counts = []
    for name, rows in ((TRAIN_FILE, train), (EVAL_FILE, evaluation)):
        hasher.update(name.encode() + b"\0")
        count = 0
        with atomic_text_file(run_dir / name) as handle:
            for row in rows:
                line = json.dumps(
                    {"id": row.id, "messages": messages_to_json(row.messages)}, ensure_ascii=False
                )
                hasher.update(line.encode("utf-8") + b"\n")
                handle.write(line + "\n")
                count += 1
        counts.append(count)
    return Snapshot(train_rows=counts[0], eval_rows=counts[1], digest=hasher.hexdigest())


def read_snapshot_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of one snapshot file (empty when the file is absent)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def with_system_prompt(
    messages: list[dict[str, str]], system_prompt: str | None
) -> list[dict[str, str]]:
    """Prepend the project's system prompt where a conversation has none."""
    if system_prompt and (not messages or messages[0]["role"] != "system"):
        return [{"role": "system", "content": system_prompt}, *messages]
    return messages
