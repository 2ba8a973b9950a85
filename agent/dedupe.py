"""Telling whether a new example's input repeats one already kept: exactly or nearly."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

NEAR_DUPLICATE_JACCARD = 0.9
"""Token-set overlap (intersection over union) from which two inputs count as the same."""

_TOKEN = re.compile(r"\w+")

Duplicate = Literal["exact", "near"]


def normalized_tokens(text: str) -> tuple[str, ...]:
    """The words of ``text``, case-folded and Unicode-normalized, punctuation dropped."""
    return tuple(_TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()))


def jaccard(first: frozenset[str], second: frozenset[str]) -> float:
    """Intersection over union of two token sets (1.0 for two empty sets)."""
    if not first and not second:
        return 1.0
    return len(first & second) / len(first | second)


@dataclass
class DuplicateIndex:
    """The inputs seen so far, asked whether a new one repeats any of them."""

    threshold: float = NEAR_DUPLICATE_JACCARD
    _exact: set[tuple[str, ...]] = field(default_factory=set)
    _token_sets: list[frozenset[str]] = field(default_factory=list)

    def add(self, text: str) -> None:
        """Remember ``text`` as kept."""
        tokens = normalized_tokens(text)
        self._exact.add(tokens)
        self._token_sets.append(frozenset(tokens))

    def find(self, text: str) -> Duplicate | None:
        """``"exact"`` or ``"near"`` when ``text`` repeats a kept input, else None."""
        tokens = normalized_tokens(text)
        if tokens in self._exact:
            return "exact"
        candidate = frozenset(tokens)
        size = len(candidate)
        for kept in self._token_sets:
            # Jaccard can reach the threshold only when the sizes are that close.
            smaller, larger = sorted((size, len(kept)))
            if larger and smaller / larger < self.threshold:
                continue
            if jaccard(candidate, kept) >= self.threshold:
                return "near"
        return None
