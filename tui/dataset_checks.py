"""What the Dataset area flags on each example: its token length, duplicate prompts, long rows,
and the start most prompts share (an instruction, left out of the prompt column).

Token lengths come from the base model's ``tokenizer.json`` when it is on disk (the converted
embedded model, a local folder, or the Hugging Face cache; the ``tokenizers`` package, no
torch); otherwise they are estimated at four characters a token, until the file appears.

A project may hold a million rows, so no check reads them all. Which rows share a prompt is
known for every row, from SQL (``store.example_pages``). Lengths are counted for the rows
shown; the median they are measured against, the count of rows too long and the shared start
come from a sample of ``SAMPLE_ROWS`` rows spread over the project (every row of a smaller
one), and the summary says when they come from a sample.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils
from tokenizers import Tokenizer

from store.example_pages import BOTH_FLAG, DUPLICATE_FLAG, LONG_FLAG, approved_answers
from store.examples import Example
from store.paths import embedded_model_dir
from store.projects import DEFAULT_BASE_MODEL, Project
from trainer.control.labels import MAX_LABELS, spec_labels, task_labels

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
SAMPLE_ROWS = 2000
"""Rows the project-wide length and prefix checks read: every row of a smaller project."""
KNOWN_LENGTHS = 100_000
"""Token lengths a counter remembers; past that it forgets them all and counts afresh."""
ANSWER_KINDS = 2 * MAX_LABELS
"""Distinct approved answers read to tell labels from free text: more than a label task has,
even with the variants in spacing that count as one label."""


@dataclass
class TokenCounter:
    """Counts the tokens of examples, remembering each conversation's count by its hash."""

    tokenizer: Tokenizer | None
    """The base model's tokenizer, or None to estimate from characters."""
    context: int | None
    """The base model's context length in tokens, when known."""
    _known: dict[str, int] = field(default_factory=dict, repr=False)
    # The area's workers count at once (the rows shown, a project's sample): one at a time.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def exact(self) -> bool:
        """Whether counts come from the real tokenizer (else they are estimates)."""
        return self.tokenizer is not None

    def count(self, examples: Sequence[Example]) -> dict[int, int]:
        """Token length of each example (its turns plus template overhead), by id."""
        with self._lock:
            return self._count(examples)

    def _count(self, examples: Sequence[Example]) -> dict[int, int]:
        if len(self._known) + len(examples) > KNOWN_LENGTHS:
            # Scrolling through a million rows must not keep a million lengths.
            self._known.clear()
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
            return BOTH_FLAG
        if self.same_prompt_as:
            return DUPLICATE_FLAG
        return LONG_FLAG if self.too_long else ""


@dataclass(frozen=True)
class DatasetChecks:
    """The checks of the rows shown: each one's, and the start of prompts left out of them."""

    by_id: dict[int, ExampleCheck]
    exact_tokens: bool
    """Whether token lengths come from the real tokenizer."""
    prompt_prefix: str = ""
    """The start most prompts share (an instruction), left out of the prompt column."""


NO_CHECKS = DatasetChecks({}, exact_tokens=False)
"""The checks of no rows."""


@dataclass(frozen=True)
class ProjectChecks:
    """What the checks found over a whole project."""

    duplicates: int
    """Live rows that share their prompt with another: every row is checked, in SQL."""
    too_long: int
    """Rows of the sample too long to train on, or far longer than the median."""
    sampled: int
    """Rows the length and prefix checks read."""
    total: int
    """Live rows when they were checked: ``sampled`` is all of them unless fewer."""
    median_tokens: float
    """The median token length of the sample."""
    prompt_prefix: str
    """The start most prompts of the sample share (an instruction)."""
    labels: tuple[str, ...]
    """The task's labels (``trainer.control.labels``), from the spec or the approved answers."""

    @property
    def from_sample(self) -> bool:
        """Whether the length and prefix checks read a sample rather than every row."""
        return self.sampled < self.total


def check_rows(
    rows: Sequence[Example],
    counter: TokenCounter,
    project: ProjectChecks | None,
    shared_prompts: Mapping[int, tuple[int, ...]],
) -> DatasetChecks:
    """The checks of the rows shown: token lengths, over-long rows (against the project's
    median once it is known) and the other rows that share each one's prompt."""
    tokens = counter.count(rows)
    median = project.median_tokens if project is not None else None
    checks = {
        example.id: ExampleCheck(
            tokens=tokens[example.id],
            exact=counter.exact,
            same_prompt_as=shared_prompts.get(example.id, ()),
            too_long=_length_problem(tokens[example.id], median, counter.context),
        )
        for example in rows
    }
    prefix = project.prompt_prefix if project is not None else ""
    return DatasetChecks(checks, exact_tokens=counter.exact, prompt_prefix=prefix)


def check_project(
    sample: Sequence[Example],
    counter: TokenCounter,
    *,
    duplicates: int,
    total: int,
    labels: tuple[str, ...],
) -> ProjectChecks:
    """The project-wide checks from a sample of its rows, with its count of rows sharing a
    prompt, its live row count and its labels."""
    tokens = list(counter.count(sample).values())
    median = statistics.median(tokens) if tokens else 0.0
    too_long = sum(1 for length in tokens if _length_problem(length, median, counter.context))
    return ProjectChecks(
        duplicates=duplicates,
        too_long=too_long,
        sampled=len(sample),
        total=total,
        median_tokens=median,
        prompt_prefix=shared_prompt_prefix([example.prompt for example in sample]),
        labels=labels,
    )


def read_labels(db: sqlite_utils.Database, project: Project) -> tuple[str, ...]:
    """The project's labels by the one rule of ``trainer.control.labels``: the spec's, else
    those its approved answers show, read as distinct answers counted (not row by row)."""
    named = spec_labels(project.task_spec)
    if named:
        return task_labels(named, ())
    answers = approved_answers(db, project.id, ANSWER_KINDS)
    # The rule takes the answers as many times as the rows give them.
    return task_labels((), [answer for answer, count in answers for _ in range(count)])


def long_chars(project: ProjectChecks | None, context: int | None) -> int | None:
    """The stored length (characters of JSON) past which the filter's ``long`` takes a row to
    be too long: the length check's limit in tokens, at ``CHARS_PER_TOKEN`` a token."""
    limits = [context] if context is not None else []
    if project is not None and project.total:
        limits.append(
            max(OUTLIER_MIN_TOKENS - 1, math.floor(OUTLIER_FACTOR * project.median_tokens))
        )
    return CHARS_PER_TOKEN * min(limits) if limits else None


def _length_problem(tokens: int, median: float | None, context: int | None) -> str | None:
    if context is not None and tokens > context:
        return f"{tokens} tokens, more than the model's context of {context}: a run would fail"
    if median is None:
        # Not measured yet: only the model's context says a row is too long.
        return None
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
