"""Constrained decoding: each token keeps the answer the start of a JSON value of a shape.

``JsonConstraint`` is a logits processor. Before each token it allows only the tokens whose
text keeps the answer a valid prefix (``json_prefix``) and leaves enough tokens to close the
value, and the end of the answer only once the value is whole; so whatever the model prefers,
the answer parses, even when its tokens run out. Tokens that are special or hold part of a
character are never allowed, so the text read is the text the client gets.

What a state allows is worked out once and kept (``JsonVocabulary``): a walk of the vocabulary
as a trie, cut where the text stops being valid, except inside a string, where every token
without a quote, a backslash or a control character is allowed as one precomputed set.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from transformers import LogitsProcessor

from trainer.serving.json_prefix import (
    State,
    advance,
    is_complete,
    shortest_completion,
    start_state,
)
from trainer.serving.json_schema import Shape
from trainer.serving.vocabulary import TokenTexts

KEPT_STATES = 20_000
"""States whose allowed tokens are kept, the least recently used dropped first."""

_PLAIN_STRING = ("s", 0)
"""The frame of a string outside any escape."""

_SPELLED = '{}[],:"0truefalsn'
"""Characters a shortest completion may need besides those of keys and enum values (``0`` ends
a number or a ``\\u`` escape, ``"`` an escape or a string), each a token of its own: with
them a value can always be closed one token per character."""

_Trie = dict[str, Any]
"""A node of the token trie: a child per character, the ids ending here under ``""``."""


_Mask = npt.NDArray[np.bool_]
"""A token mask; numpy, since a few small torch operations a step cost more than the work
when torch's threads wait on a busy machine."""


@dataclass(frozen=True)
class _Moves:
    """The tokens a state allows, and for each the fewest characters left after it."""

    ids: npt.NDArray[np.int64]
    closings: npt.NDArray[np.int64]
    longest_closing: int
    plain_string: bool
    """Whether every plain string token is allowed too (the state is inside a string)."""
    plain_closing: int


class JsonVocabulary:
    """A tokenizer's tokens as JSON text: the trie, the plain string tokens, kept moves."""

    def __init__(self, texts: TokenTexts, logits_size: int) -> None:
        self.texts = texts
        self.logits_size = max(logits_size, texts.size)
        """Width of the model's logits (at least the tokenizer's size)."""
        self._trie: _Trie = {}
        self._string_specials: list[tuple[int, str]] = []
        """Tokens with a quote or a backslash, which may leave a string or escape in it."""
        plain = np.zeros(self.logits_size, dtype=np.bool_)
        for token_id in range(texts.size):
            text = texts.whole_text(token_id)
            if text is None:
                continue
            node = self._trie
            for character in text:
                node = node.setdefault(character, {})
            node.setdefault("", []).append(token_id)
            if '"' in text or "\\" in text:
                self._string_specials.append((token_id, text))
            elif min(text) >= " ":
                plain[token_id] = True
        self._plain_string = plain
        single = {character for character in _SPELLED if "" in self._trie.get(character, {})}
        self.missing_characters = "".join(sorted(set(_SPELLED) - single))
        """Characters JSON needs that no single token writes (then JSON cannot be forced)."""
        self._moves: OrderedDict[State, _Moves] = OrderedDict()
        self._lock = threading.Lock()

    def unspelled(self, shape: Shape) -> str | None:
        """A key or enum value of ``shape`` with a character no single token writes, if any.

        Such a value could not always be finished within the answer's length.
        """
        seen: set[int] = set()
        pending = [shape]
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            for text in (*current.literals, *current.key_texts):
                if not all("" in self._trie.get(character, {}) for character in text):
                    return text
            pending += [*(current.properties or {}).values(), *filter(None, [current.items])]
        return None

    def allowed(self, state: State, budget: int) -> _Mask:
        """The tokens allowed after ``state`` with ``budget`` tokens left after this one."""
        moves = self._moves_of(state)
        mask = np.zeros(self.logits_size, dtype=np.bool_)
        if moves.longest_closing <= budget:
            mask[moves.ids] = True
        else:
            mask[moves.ids[moves.closings <= budget]] = True
        if moves.plain_string and moves.plain_closing <= budget:
            mask |= self._plain_string
        return mask

    def _moves_of(self, state: State) -> _Moves:
        with self._lock:
            kept = self._moves.get(state)
            if kept is not None:
                self._moves.move_to_end(state)
                return kept
        moves = self._work_out(state)
        with self._lock:
            self._moves[state] = moves
            while len(self._moves) > KEPT_STATES:
                self._moves.popitem(last=False)
        return moves

    def _work_out(self, state: State) -> _Moves:
        found: dict[int, int] = {}
        plain_string = state[-1] == _PLAIN_STRING
        if plain_string:
            for token_id, text in self._string_specials:
                following = advance(state, text)
                if following is not None:
                    found[token_id] = shortest_completion(following)
        else:
            self._walk(self._trie, state, found)
        ids = np.fromiter(found, dtype=np.int64, count=len(found))
        closings = np.fromiter(found.values(), dtype=np.int64, count=len(found))
        return _Moves(
            ids=ids,
            closings=closings,
            longest_closing=max(found.values(), default=0),
            plain_string=plain_string,
            plain_closing=shortest_completion(state) if plain_string else 0,
        )

    def _walk(self, node: _Trie, state: State, found: dict[int, int]) -> None:
        """Every token under ``node`` whose text, read on from ``state``, stays valid."""
        pending = [(node, state)]
        while pending:
            node, state = pending.pop()
            for character, child in node.items():
                if not character:
                    continue
                following = advance(state, character)
                if following is None:
                    continue
                ends_here = child.get("")
                if ends_here:
                    closing = shortest_completion(following)
                    for token_id in ends_here:
                        found[token_id] = closing
                pending.append((child, following))


class JsonConstraint(LogitsProcessor):
    """Masks the logits of each answer (row) to the tokens that keep it a JSON prefix."""

    def __init__(
        self,
        vocabulary: JsonVocabulary,
        shape: Shape,
        *,
        rows: int,
        prompt_tokens: int,
        max_new_tokens: int,
        eos_token_ids: frozenset[int],
    ) -> None:
        self._vocabulary = vocabulary
        self._states: list[State | None] = [start_state(shape)] * rows
        self._read = prompt_tokens
        self._prompt_tokens = prompt_tokens
        self._max_new_tokens = max_new_tokens
        self._eos = eos_token_ids
        self._eos_ids = sorted(eos_token_ids)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        new_tokens = input_ids[:, self._read :].tolist()
        self._read = input_ids.shape[1]
        # Tokens still allowed after this one: what is left of the answer's length.
        budget = self._max_new_tokens - (input_ids.shape[1] - self._prompt_tokens) - 1
        blocked = np.ones(tuple(scores.shape), dtype=np.bool_)
        for row, tokens in enumerate(new_tokens):
            state = self._states[row]
            for token_id in tokens:
                if state is None:
                    break
                text = (
                    None if token_id in self._eos else self._vocabulary.texts.whole_text(token_id)
                )
                state = None if text is None else advance(state, text)
            self._states[row] = state
            if state is None or is_complete(state):
                # A whole value ends the answer; an ended answer only pads.
                blocked[row, self._eos_ids] = False
                continue
            allowed = self._vocabulary.allowed(state, budget)
            if not allowed.any():
                # Too few tokens were left from the start (the server refuses such requests):
                # ending the answer beats sampling from nothing.
                blocked[row, self._eos_ids] = False
                continue
            blocked[row] = ~allowed[: scores.shape[1]]
        mask = torch.from_numpy(blocked).to(scores.device)
        return scores.masked_fill(mask, -float("inf"))  # type: ignore[return-value]
