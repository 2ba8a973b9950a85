"""The reliability scorecard: what each fault, bad input and payload test tried, and how it went."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCORECARD_ENV = "TUNESMITH_SCORECARD"
"""File that receives every record as a JSON line, when set (for CI to keep)."""


@dataclass
class Scorecard:
    """Counts of faults, bad inputs, rows and security payloads, across one pytest session."""

    records: list[dict[str, Any]] = field(default_factory=list, repr=False)
    sink: Path | None = None
    """The JSON-lines file records are appended to, if any."""

    @contextmanager
    def fault(self, name: str) -> Iterator[None]:
        """Inject one fault in the block; it counts as survived when the block's checks pass."""
        survived = False
        try:
            yield
            survived = True
        finally:
            self._record({"kind": "fault", "name": name, "survived": survived})

    def bad_input(self, name: str, *, crashed: bool, silently_accepted: bool) -> None:
        """One bad input tried: whether it crashed, or a bad row got in without a word."""
        self._record(
            {
                "kind": "bad_input",
                "name": name,
                "crashed": crashed,
                "silently_accepted": silently_accepted,
            }
        )

    def rows(self, name: str, *, expected: int, kept: int) -> None:
        """Rows that had to survive a fault or a bad file, and how many did."""
        self._record({"kind": "rows", "name": name, "expected": expected, "kept": kept})

    def payload(self, name: str, *, neutralised: bool) -> None:
        """One security payload tried, and whether it was made harmless."""
        self._record({"kind": "payload", "name": name, "neutralised": neutralised})

    def lines(self) -> list[str]:
        """The scorecard, one line per figure."""
        faults = self._of("fault")
        bad_inputs = self._of("bad_input")
        rows = self._of("rows")
        payloads = self._of("payload")
        lost = sum(max(0, r["expected"] - r["kept"]) for r in rows)
        return [
            f"faults: {len(faults)} injected, {sum(r['survived'] for r in faults)} survived",
            f"bad inputs: {len(bad_inputs)} tried, {sum(r['crashed'] for r in bad_inputs)}"
            f" crashed, {sum(r['silently_accepted'] for r in bad_inputs)} silently accepted",
            f"rows lost: {lost} (of {sum(r['expected'] for r in rows)} checked)",
            f"security payloads: {len(payloads)} tried,"
            f" {sum(r['neutralised'] for r in payloads)} neutralised",
        ]

    def _of(self, kind: str) -> list[dict[str, Any]]:
        return [record for record in self.records if record["kind"] == kind]

    def _record(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self.sink is not None:
            with self.sink.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


def scorecard_from_env() -> Scorecard:
    """A scorecard that also appends to ``$TUNESMITH_SCORECARD`` when it is set."""
    configured = os.environ.get(SCORECARD_ENV)
    return Scorecard(sink=Path(configured) if configured else None)
