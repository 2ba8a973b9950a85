"""A run's frozen data: the approved rows written to its folder as JSONL (no torch here)."""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import defaultdict
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.atomic import atomic_text_file
from store.examples import Example, messages_to_json

TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
HASH_CHUNK_BYTES = 1 << 20
"""How much of a written file the digest reads at a time."""

VALIDATION_FILE = "validation.jsonl"
"""Train rows carved off to validate on while training; the eval rows stay the final test."""
SNAPSHOT_FILES = (TRAIN_FILE, EVAL_FILE, VALIDATION_FILE)
"""The files a snapshot may hold (a run without validation rows has no validation file)."""


@dataclass(frozen=True)
class Snapshot:
    """What a run trains and evaluates on."""

    train_rows: int
    eval_rows: int
    digest: str
    validation_rows: int = 0


def validation_ids(rows: Iterable[tuple[int, str]], count: int) -> frozenset[int]:
    """The ``count`` train rows that validate, from ``rows`` of (id, stratum): each stratum
    (a label task's label; one for any other task) gives its share, the lowest-hashing of its
    ids. The same rows every time, and mostly the same as rows are added, in any order.

    Within a stratum of ``n`` rows, its ``i``-th by hash ranks at ``(i + 1/2) / n`` and the
    lowest ranks win (Webster's apportionment): a label of 40 rows gives 5 of 12 chosen from
    100 and one of 4 rows gives none, so every label the split can afford is checked on.
    """
    strata: dict[str, list[int]] = defaultdict(list)
    for example_id, stratum in rows:
        strata[stratum].append(example_id)
    ranked = (
        ((position + 0.5) / len(ids), _validation_rank(example_id), example_id)
        for ids in strata.values()
        for position, example_id in enumerate(sorted(ids, key=_validation_rank))
    )
    return frozenset(example_id for *_, example_id in heapq.nsmallest(count, ranked))


def _validation_rank(example_id: int) -> int:
    digest = hashlib.sha256(f"validation:{example_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def write_snapshot(
    run_dir: Path,
    train: Iterable[Example],
    evaluation: Iterable[Example],
    validation: frozenset[int] = frozenset(),
) -> Snapshot:
    """Write the train rows (less those whose id is in ``validation``, which go to their own
    file) and the eval rows into ``run_dir`` as they come (a million are never held); the
    digest covers every file written: each one's name, a NUL and its bytes, in order."""
    names = (TRAIN_FILE, VALIDATION_FILE) if validation else (TRAIN_FILE,)
    counts = dict.fromkeys((*names, EVAL_FILE), 0)
    with ExitStack() as files:
        handles = {name: files.enter_context(atomic_text_file(run_dir / name)) for name in names}
        for row in train:
            name = VALIDATION_FILE if row.id in validation else TRAIN_FILE
            handles[name].write(_row_line(row) + "\n")
            counts[name] += 1
    with atomic_text_file(run_dir / EVAL_FILE) as handle:
        for row in evaluation:
            handle.write(_row_line(row) + "\n")
            counts[EVAL_FILE] += 1
    hasher = hashlib.sha256()
    for name in counts:
        hasher.update(name.encode() + b"\0")
        with (run_dir / name).open("rb") as written:
            while chunk := written.read(HASH_CHUNK_BYTES):
                hasher.update(chunk)
    return Snapshot(
        train_rows=counts[TRAIN_FILE],
        eval_rows=counts[EVAL_FILE],
        digest=hasher.hexdigest(),
        validation_rows=counts.get(VALIDATION_FILE, 0),
    )


def _row_line(row: Example) -> str:
    return json.dumps(
        {"id": row.id, "messages": messages_to_json(row.messages)}, ensure_ascii=False
    )


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
