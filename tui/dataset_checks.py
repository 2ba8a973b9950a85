"""What the Dataset area flags on each example: its token length, duplicate prompts, long rows,
and the start most prompts share (an instruction, left out of the prompt column).

Token lengths come from the base model's ``tokenizer.json`` when it is on disk (the converted
embedded model, a local folder, or the Hugging Face cache; the ``tokenizers`` package, no
torch); otherwise they are estimated at four characters a token, until the file appears.
"""

from __future__ import annotations

import json
import math
import re
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
SHARED_PREFIX_MIN_CHARS = 20
"""A shared start shorter than this is part of the rows, not an instruction."""
SHARED_PREFIX_MIN_ROWS = 3
"""Fewest rows that must share a start for it to be an instruction."""
SHARED_PREFIX_SHARE = 0.8
"""Share of the rows that must start with it."""


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
    """A counter for ``base_model``: exact when its ``tokenizer.json`` is on disk (the converted
    embedded model, a local folder or the Hugging Face cache), estimated otherwise."""
    tokenizer_file, config_file = _model_files(base_model)
    tokenizer = None
    if tokenizer_file is not None and tokenizer_file.is_file():
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception:
            # A file the library cannot read is no reason to hide the table; estimate instead.
            tokenizer = None
    context = _context_length(config_file) if config_file is not None else None
    fallback_context = EMBEDDED_CONTEXT if base_model == DEFAULT_BASE_MODEL else None
    return TokenCounter(tokenizer, context or fallback_context)


def _model_files(base_model: str) -> tuple[Path | None, Path | None]:
    """Where the base model's ``tokenizer.json`` and ``config.json`` are, or would be."""
    if base_model == DEFAULT_BASE_MODEL:
        folder = embedded_model_dir()
    else:
        folder = Path(base_model).expanduser()
        if not folder.is_dir():
            return _hub_cached(base_model, "tokenizer.json"), _hub_cached(base_model, "config.json")
    return folder / "tokenizer.json", folder / "config.json"


def _hub_cached(repo_id: str, filename: str) -> Path | None:
    """Where the Hugging Face cache holds ``filename`` of hub model ``repo_id``, if it does.

    Only the cache is looked at, never the network; huggingface_hub is imported here, so
    projects on a local or the embedded model never load it.
    """
    if repo_id.count("/") != 1:
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename)
    except ValueError:
        # Not a valid hub id (HFValidationError is a ValueError): nothing can be cached.
        return None
    return Path(found) if isinstance(found, str) else None


class TokenCounters:
    """One counter per base model, looked for on disk again while it can only estimate, so
    counts turn exact once the model is converted or downloaded (by Chat, Compare or a run)."""

    def __init__(self) -> None:
        self._by_model: dict[str, TokenCounter] = {}

    def for_model(self, base_model: str) -> TokenCounter:
        """The counter of ``base_model``: the exact one found before, else a fresh look."""
        counter = self._by_model.get(base_model)
        if counter is None or not counter.exact:
            counter = self._by_model[base_model] = token_counter_for(base_model)
        return counter


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
    prompt_prefix: str = ""
    """The start most prompts share (an instruction), left out of the prompt column."""

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
    """Token lengths, duplicate prompts, over-long rows and the shared start of ``examples``."""
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
    prefix = shared_prompt_prefix([example.prompt for example in examples])
    return DatasetChecks(checks, exact_tokens=counter.exact, prompt_prefix=prefix)


def _length_problem(tokens: int, median: float, context: int | None) -> str | None:
    if context is not None and tokens > context:
        return f"{tokens} tokens, more than the model's context of {context}: a run would fail"
    if tokens >= OUTLIER_MIN_TOKENS and tokens > OUTLIER_FACTOR * median:
        return f"{tokens} tokens, over {OUTLIER_FACTOR}x the median of {median:g}: a broken row?"
    return None


# Where a shared start may end: after whitespace, best after a colon, a full stop or a newline.
_WORD_END = re.compile(r"\s+")
_CLAUSE_END = re.compile(r"(?:[:.?!;]\s+|\n\s*)")


def shared_prompt_prefix(prompts: Sequence[str]) -> str:
    """The longest start, ending at a word boundary, that most prompts share and that is long
    enough to be an instruction rather than a common first word; empty when there is none."""
    need = max(SHARED_PREFIX_MIN_ROWS, math.ceil(SHARED_PREFIX_SHARE * len(prompts)))
    if len(prompts) < need:
        return ""
    ordered = sorted(prompts)
    # Sorted, the prompts that share a start are neighbours: the longest start `need` of them
    # share is that of the first and last of some run of `need` neighbours. A run of copies of
    # one prompt shares no instruction, only a duplicate.
    longest = max(
        (
            _common_start(ordered[first], ordered[first + need - 1])
            for first in range(len(ordered) - need + 1)
            if ordered[first] != ordered[first + need - 1]
        ),
        key=len,
        default="",
    )
    for boundary in (_CLAUSE_END, _WORD_END):
        ends = [m.end() for m in boundary.finditer(longest) if m.end() >= SHARED_PREFIX_MIN_CHARS]
        if ends:
            return longest[: ends[-1]]
    return ""


def _common_start(one: str, other: str) -> str:
    """The longest start ``one`` and ``other`` share."""
    differ = (index for index, (a, b) in enumerate(zip(one, other, strict=False)) if a != b)
    return one[: next(differ, min(len(one), len(other)))]


def without_prefix(prompt: str, prefix: str) -> str:
    """``prompt`` with the shared ``prefix`` replaced by an ellipsis, when it starts with it and
    goes on after it."""
    if prefix and prompt.startswith(prefix) and prompt[len(prefix) :].strip():
        return "…" + prompt[len(prefix) :]
    return prompt
