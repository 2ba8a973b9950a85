"""Checks of a project's approved rows before training: leaks, duplicates, balance, length.

Only approved rows are checked, since they are what a run freezes. Rows are compared by
their input (the turns before the answer, the system prompt aside), not their answer: a label
task's rows share a handful of answers by design, and a JSON task's share most of their keys,
so equal answers say nothing, while an eval input the model has seen in training makes its
score measure memory instead of skill. The system prompt is set aside for the same reason: it
is the same on every row.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from agent.dedupe import jaccard, normalized_tokens
from agent.spec import TaskSpec, label_of
from store.examples import Example
from store.vocabulary import ExampleSplit

LEAK_OVERLAP = 0.8
"""Token-set overlap from which an eval input counts as a reworded train input.

Lower than drafting's near-duplicate bar (0.9): a leak warning costs a look, a missed leak
inflates every score measured on that row.
"""
ONE_WORD_MAX_WORDS = 12
"""Inputs up to this many words (the longer of the two) count as leaked when one word differs.

In a short input one changed word is the whole rewording ("reset my password please" and
"reset my password now"), yet its token overlap is low; from 9 words on, one changed word
leaves an overlap of at least ``LEAK_OVERLAP``, so the two measures meet.
"""
ONE_WORD_MIN_WORDS = 3
"""Shorter inputs are not compared word by word: "hi" and "hello" are no leak."""
RARE_LABEL_SHARE = 0.2
"""A label with under this share of the commonest label's train rows is warned about."""
SNIPPET_CHARS = 60
"""How much of an input a warning quotes."""

LeakKind = Literal["exact", "overlap", "one_word"]
"""Which measure found a leak: equal inputs, high token overlap, or one word changed."""


@dataclass(frozen=True)
class TokenLengths:
    """Each row's length in tokens and the base model's context, as the caller counted them.

    The caller counts (the Dataset area's ``TokenCounter``, which reads the base model's
    tokenizer): the agent cannot import the app, and one counter keeps the CLI's numbers
    the same as the Dataset area's.
    """

    by_id: Mapping[int, int]
    """Token length of each example, by id."""
    context: int | None
    """The base model's context length, when known."""
    exact: bool = True
    """Whether the lengths come from the model's tokenizer rather than a character estimate."""


@dataclass(frozen=True)
class Leak:
    """An eval row whose input nearly repeats a train row's."""

    eval_id: int
    train_id: int
    similarity: float
    """1.0 for equal inputs; token overlap, or the share of words kept, otherwise."""
    kind: LeakKind


@dataclass(frozen=True)
class Balance:
    """How many approved rows give each label, per split."""

    labels: tuple[str, ...]
    train: Mapping[str, int]
    eval: Mapping[str, int]
    unmatched: Mapping[ExampleSplit, int]
    """Rows whose answer names none of the labels."""


@dataclass(frozen=True)
class TooLong:
    """A row longer than the base model's context: a run would fail on it."""

    id: int
    tokens: int
    context: int
    exact: bool


@dataclass(frozen=True)
class Findings:
    """What the checks found, with one warning line for each finding."""

    rows: Mapping[ExampleSplit, int]
    """Approved rows checked, per split."""
    leaks: tuple[Leak, ...]
    duplicates: Mapping[ExampleSplit, tuple[tuple[int, ...], ...]]
    """Groups of ids with the same input within a split."""
    balance: Balance | None
    """None when the task has no labels."""
    too_long: tuple[TooLong, ...]
    warnings: tuple[str, ...]

    def to_record(self) -> dict[str, Any]:
        """The JSON ``tunesmith examples check --json`` prints."""
        balance = None
        if self.balance is not None:
            balance = {
                "labels": list(self.balance.labels),
                "train": dict(self.balance.train),
                "eval": dict(self.balance.eval),
                "unmatched": dict(self.balance.unmatched),
            }
        return {
            "rows": dict(self.rows),
            "leaks": [
                {
                    "eval_id": leak.eval_id,
                    "train_id": leak.train_id,
                    "similarity": round(leak.similarity, 3),
                    "kind": leak.kind,
                }
                for leak in self.leaks
            ],
            "duplicates": {
                split: [list(group) for group in groups]
                for split, groups in self.duplicates.items()
            },
            "balance": balance,
            "too_long": [
                {"id": row.id, "tokens": row.tokens, "context": row.context}
                for row in self.too_long
            ],
            "warnings": list(self.warnings),
        }


def check_data(
    examples: Sequence[Example],
    spec: TaskSpec,
    *,
    labels: Sequence[str] = (),
    lengths: TokenLengths | None = None,
) -> Findings:
    """Leaks, duplicates within a split, label balance and over-long rows of ``examples``.

    ``labels`` are the task's labels as ``trainer.control.labels.task_labels`` gives them
    (empty for a task without labels); the caller asks, since the agent cannot import the
    trainer. ``spec`` says where an answer names its label (the whole answer, or a JSON field).
    """
    approved = [e for e in examples if e.status == "approved" and e.deleted_at is None]
    train = [e for e in approved if e.split == "train"]
    evaluation = [e for e in approved if e.split == "eval"]
    inputs = {e.id: input_text(e) for e in approved}
    tokens = {example_id: input_tokens(text) for example_id, text in inputs.items()}
    leaks = find_leaks(
        [(e.id, tokens[e.id]) for e in train], [(e.id, tokens[e.id]) for e in evaluation]
    )
    duplicates: dict[ExampleSplit, tuple[tuple[int, ...], ...]] = {
        "train": same_input_groups((e.id, tokens[e.id]) for e in train),
        "eval": same_input_groups((e.id, tokens[e.id]) for e in evaluation),
    }
    balance = label_balance(train, evaluation, replace(spec, labels=tuple(labels)))
    too_long = _too_long(approved, lengths) if lengths is not None else ()
    warnings = [
        *(_leak_warning(leak, inputs[leak.eval_id]) for leak in leaks),
        *(
            f"{split}: examples {_ids(group)} have the same input: {_snippet(inputs[group[0]])}"
            for split, groups in duplicates.items()
            for group in groups
        ),
        *(balance_warnings(balance) if balance is not None else ()),
        *(_length_warning(row) for row in too_long),
    ]
    return Findings(
        rows={"train": len(train), "eval": len(evaluation)},
        leaks=tuple(leaks),
        duplicates=duplicates,
        balance=balance,
        too_long=too_long,
        warnings=tuple(warnings),
    )


def input_text(example: Example) -> str:
    """What a row asks: its turns before the answer, without the system prompt."""
    turns = example.messages[:-1] if example.answered else example.messages
    return "\n".join(turn.content for turn in turns if turn.role != "system")


def input_tokens(text: str) -> tuple[str, ...]:
    """The words an input is compared by; an input with no word (emoji, punctuation) is one
    token of its own, so two such inputs match only when equal."""
    return normalized_tokens(text) or (" ".join(text.casefold().split()),)


def find_leaks(
    train: Sequence[tuple[int, tuple[str, ...]]],
    evaluation: Sequence[tuple[int, tuple[str, ...]]],
) -> list[Leak]:
    """Each (eval row, train row) pair whose inputs are equal, overlap highly, or differ by
    one word in a short input, by eval id and then most similar first.

    Train rows are indexed three ways, so each eval row is compared with a few candidates
    instead of every train row: by their exact words; by the words of each one-word deletion
    of a short input (two inputs one edit apart share one of these); and by the rarest words
    of each input (prefix filtering: two word sets of Jaccard >= t share one of the first
    ``n - ceil(t n) + 1`` words of each, in one rarest-first order), long rows and short
    alike; sizes too far apart for the overlap are skipped before it is computed.
    """
    frequency = Counter(token for _, tokens in (*train, *evaluation) for token in set(tokens))

    def rarest_first(tokens: tuple[str, ...]) -> list[str]:
        return sorted(set(tokens), key=lambda token: (frequency[token], token))

    by_words: dict[tuple[str, ...], list[int]] = defaultdict(list)
    by_deletion: dict[tuple[str, ...], list[int]] = defaultdict(list)
    by_rare_word: dict[str, list[int]] = defaultdict(list)
    train_tokens = dict(train)
    train_sets = {train_id: frozenset(tokens) for train_id, tokens in train}
    for train_id, tokens in train:
        by_words[tokens].append(train_id)
        if len(tokens) <= ONE_WORD_MAX_WORDS:
            for variant in _with_one_deleted(tokens):
                by_deletion[variant].append(train_id)
        for token in _overlap_prefix(rarest_first(tokens)):
            by_rare_word[token].append(train_id)

    leaks: list[Leak] = []
    for eval_id, tokens in evaluation:
        found: dict[int, tuple[float, LeakKind]] = {
            train_id: (1.0, "exact") for train_id in by_words.get(tokens, ())
        }
        eval_set = frozenset(tokens)
        overlap_candidates = {
            train_id
            for token in _overlap_prefix(rarest_first(tokens))
            for train_id in by_rare_word.get(token, ())
        }
        for train_id in overlap_candidates - found.keys():
            train_set = train_sets[train_id]
            smaller, larger = sorted((len(eval_set), len(train_set)))
            if smaller < LEAK_OVERLAP * larger:
                continue
            overlap = jaccard(eval_set, train_set)
            if overlap >= LEAK_OVERLAP:
                found[train_id] = (overlap, "overlap")
        if len(tokens) <= ONE_WORD_MAX_WORDS:
            edit_candidates = {
                train_id
                for variant in _with_one_deleted(tokens)
                for train_id in by_deletion.get(variant, ())
            }
            for train_id in edit_candidates:
                kept = _share_kept_by_one_edit(tokens, train_tokens[train_id])
                if kept is not None and (train_id not in found or kept > found[train_id][0]):
                    found[train_id] = (kept, "one_word")
        ranked = sorted(found.items(), key=lambda item: (-item[1][0], item[0]))
        leaks.extend(Leak(eval_id, train_id, score, kind) for train_id, (score, kind) in ranked)
    return leaks


def same_input_groups(rows: Iterable[tuple[int, tuple[str, ...]]]) -> tuple[tuple[int, ...], ...]:
    """Groups of two or more ids whose inputs have the same words, in id order."""
    by_words: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for example_id, tokens in rows:
        by_words[tokens].append(example_id)
    return tuple(sorted(tuple(sorted(ids)) for ids in by_words.values() if len(ids) > 1))


def label_balance(
    train: Sequence[Example], evaluation: Sequence[Example], spec: TaskSpec
) -> Balance | None:
    """How many rows of each split give each of the spec's labels; None without labels."""
    if not spec.labels:
        return None
    counts: dict[ExampleSplit, Counter[str | None]] = {
        "train": Counter(label_of(spec, e.response) for e in train),
        "eval": Counter(label_of(spec, e.response) for e in evaluation),
    }
    return Balance(
        labels=spec.labels,
        train={label: counts["train"][label] for label in spec.labels},
        eval={label: counts["eval"][label] for label in spec.labels},
        unmatched={split: counted[None] for split, counted in counts.items()},
    )


def balance_warnings(balance: Balance) -> list[str]:
    """A line for each label without train rows, and one when the rarest label is rare."""
    warnings = [
        f"label {label!r} has no train rows: the model cannot learn it"
        for label in balance.labels
        if not balance.train[label]
    ]
    present = {label: n for label, n in balance.train.items() if n}
    if len(present) >= 2:
        commonest = max(present, key=lambda label: present[label])
        rarest = min(present, key=lambda label: present[label])
        if present[rarest] < RARE_LABEL_SHARE * present[commonest]:
            warnings.append(
                f"label {rarest!r} has {_rows(present[rarest])}, under a fifth of"
                f" {commonest!r} ({present[commonest]}): add rows of it"
            )
    return warnings


def _with_one_deleted(tokens: tuple[str, ...]) -> set[tuple[str, ...]]:
    """``tokens`` and each sequence one word shorter."""
    return {tokens, *(tokens[:index] + tokens[index + 1 :] for index in range(len(tokens)))}


def _overlap_prefix(ranked: list[str]) -> list[str]:
    # The epsilon keeps 0.8 * 5 from rounding up past 4, which would shorten the prefix.
    return ranked[: len(ranked) - math.ceil(LEAK_OVERLAP * len(ranked) - 1e-9) + 1]


def _share_kept_by_one_edit(first: tuple[str, ...], second: tuple[str, ...]) -> float | None:
    """The share of words kept when ``first`` and ``second`` are one word apart (one
    changed, added or removed) and the longer is a short input; else None."""
    shorter, longer = sorted((first, second), key=len)
    if not ONE_WORD_MIN_WORDS <= len(longer) <= ONE_WORD_MAX_WORDS or shorter == longer:
        return None
    if len(longer) - len(shorter) > 1:
        return None
    start = 0
    while start < len(shorter) and shorter[start] == longer[start]:
        start += 1
    skip = 1 if len(longer) == len(shorter) else 0
    if shorter[start + skip :] != longer[start + 1 :]:
        return None
    return 1 - 1 / len(longer)


def _too_long(approved: Sequence[Example], lengths: TokenLengths) -> tuple[TooLong, ...]:
    context = lengths.context
    if context is None:
        return ()
    return tuple(
        TooLong(e.id, lengths.by_id[e.id], context, lengths.exact)
        for e in approved
        if lengths.by_id.get(e.id, 0) > context
    )


def _leak_warning(leak: Leak, eval_input: str) -> str:
    measure = {"exact": "same input", "overlap": "overlap", "one_word": "one word apart"}
    return (
        f"eval example {leak.eval_id} repeats train example {leak.train_id}"
        f" ({measure[leak.kind]}, similarity {leak.similarity:.2f}): {_snippet(eval_input)}"
    )


def _length_warning(row: TooLong) -> str:
    about = "" if row.exact else "about "
    return (
        f"example {row.id} is {about}{row.tokens} tokens, more than the model's context of"
        f" {row.context}: a run would fail on it"
    )


def _rows(count: int) -> str:
    return f"{count} train row" if count == 1 else f"{count} train rows"


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(example_id) for example_id in ids[:-1]) + f" and {ids[-1]}"


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"
