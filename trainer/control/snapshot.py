"""A run's frozen data: the approved rows written to its folder as JSONL (no torch here)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.atomic import write_atomically
from store.examples import Example, messages_to_json

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"


@dataclass(frozen=True)
class Snapshot:
    """What a run trains and evaluates on."""

    train_rows: int
    eval_rows: int
    digest: str


def write_snapshot(run_dir: Path, train: list[Example], evaluation: list[Example]) -> Snapshot:
    """Write the train and eval rows into ``run_dir``; the digest covers both files."""
    hasher = hashlib.sha256()
    for name, rows in ((TRAIN_FILE, train), (EVAL_FILE, evaluation)):
        lines = "".join(
            json.dumps(
                {"id": row.id, "messages": messages_to_json(row.messages)}, ensure_ascii=False
            )
            + "\n"
            for row in rows
        )
        hasher.update(name.encode() + b"\0" + lines.encode("utf-8"))
        write_atomically(run_dir / name, lines)
    return Snapshot(train_rows=len(train), eval_rows=len(evaluation), digest=hasher.hexdigest())


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
