"""What the Dataset area flags on each example: its token length, duplicate prompts, long rows.

Token lengths come from the base model's ``tokenizer.json`` when it is on disk (the
``tokenizers`` package, no torch); otherwise they are estimated at four characters a token.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer

from store.examples import Example
from store.paths import embedded_model_dir
from store.projects import DEFAULT_BASE_MODEL

CHARS_PER_TOKEN = 4
"""The estimate used when no tokenizer file is at hand."""
TOKENS_PER_TURN = 4
"""What the chat template adds around each message (role markers, end of turn), roughly."""
EMBEDDED_CONTEXT = 8192
"""Context length of the embedded SmolLM2-135M-Instruct, known before it is first converted."""
OUTLIER_FACTOR = 4
"""A row this many times longer than the median is flagged."""
OUTLIER_MIN_TOKENS = 512
"""Rows shorter than this are never flagged as outliers."""


@dataclass
class TokenCounter:
    """Counts the tokens of examples, remembering each conversation's count by its hash."""

    tokenizer: Tokenizer | None
    """The base model's tokenizer, or None to estimate from characters."""
    context: int | None
    """The base model's context length in tokens, when known."""
    _known: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def exact(self) -> bool:
        """Whether counts come from the real tokenizer (else they are estimates)."""
        return self.tokenizer is not None

    def count(self, examples: Sequence[Example]) -> dict[int, int]:
        """Token length of each example (its turns plus template overhead), by id."""
        missing = [example for example in examples if example.content_hash not in self._known]
        texts = ["\n".join(m.content for m in example.messages) for example in missing]
        if self.tokenizer is not None and texts:
            lengths = [len(encoding.ids) for encoding in self.tokenizer.encode_batch(texts)]
        else:
            lengths = [math.ceil(len(text) / CHARS_PER_TOKEN) for text in texts]
        for example, length in zip(missing, lengths, strict=True):
            self._known[example.content_hash] = length + TOKENS_PER_TURN * len(example.messages)
        return {example.id: self._known[example.content_hash] for example in examples}


def token_counter_for(base_model: str) -> TokenCounter:
    """A counter for ``base_model``: exact when its folder (or the converted embedded model)
    holds ``tokenizer.json``, estimated otherwise."""
    if base_model == DEFAULT_BASE_MODEL:
        folder = embedded_model_dir()
        fallback_context: int | None = EMBEDDED_CONTEXT
    else:
        folder = Path(base_model).expanduser()
        fallback_context = None
    tokenizer = None
    tokenizer_file = folder / "tokenizer.json"
    if tokenizer_file.is_file():
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception:
            # A file the library cannot read is no reason to hide the table; estimate instead.
            tokenizer = None
    return TokenCounter(tokenizer, _context_length(folder / "config.json") or fallback_context)


def _context_length(config_file: Path) -> int | None:
    try:
        value = json.loads(config_file.read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


@dataclass(frozen=True)
class ExampleCheck:
    """What the checks found about one example."""

    tokens: int
    """Its length in tokens (estimated unless ``exact``)."""
    exact: bool = True
    """Whether ``tokens`` comes from the model's tokenizer rather than a character estimate."""
    same_prompt_as: tuple[int, ...] = ()
    """Other examples with the same prompt (case and spacing ignored)."""
    too_long: str | None = None
    """Why its length is a problem, if it is."""

    @property
    def flag(self) -> str:
        """A short word for the table: ``dup``, ``long``, ``both`` or nothing."""
        if self.same_prompt_as and self.too_long:
            return "both"
        if self.same_prompt_as:
            return "dup"
        return "long" if self.too_long else ""


@dataclass(frozen=True)
class DatasetChecks:
    """The checks of every example of a project."""

    by_id: dict[int, ExampleCheck]
    exact_tokens: bool
    """Whether token lengths come from the real tokenizer."""

    @property
    def duplicates(self) -> int:
        """How many examples share their prompt with another."""
        return sum(1 for check in self.by_id.values() if check.same_prompt_as)

    @property
    def too_long(self) -> int:
        """How many examples are flagged as too long."""
        return sum(1 for check in self.by_id.values() if check.too_long)


NO_CHECKS = DatasetChecks({}, exact_tokens=False)
"""The checks of an empty dataset."""


def check_examples(examples: Sequence[Example], counter: TokenCounter) -> DatasetChecks:
    """Token lengths, duplicate prompts and over-long rows of ``examples``."""
    tokens = counter.count(examples)
    by_prompt: dict[str, list[int]] = defaultdict(list)
    for example in examples:
        by_prompt[" ".join(example.prompt.casefold().split())].append(example.id)
    median = statistics.median(tokens.values()) if tokens else 0
    checks = {}
    for example in examples:
        length = tokens[example.id]
        same = by_prompt[" ".join(example.prompt.casefold().split())]
        checks[example.id] = ExampleCheck(
            tokens=length,
            exact=counter.exact,
            same_prompt_as=tuple(other for other in same if other != example.id),
            too_long=_length_problem(length, median, counter.context),
        )
    return DatasetChecks(checks, exact_tokens=counter.exact)


def _length_problem(tokens: int, median: float, context: int | None) -> str | None:
    if context is not None and tokens > context:
        return f"{tokens} tokens, more than the model's context of {context}: a run would fail"
    if tokens >= OUTLIER_MIN_TOKENS and tokens > OUTLIER_FACTOR * median:
        return f"{tokens} tokens, over {OUTLIER_FACTOR}x the median of {median:g}: a broken row?"
    return None
