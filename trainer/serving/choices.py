"""The choices of one answer as they are generated: text pieces, held back at stop strings, each
with the log probabilities of the tokens that wrote it.

``ChoiceStreamer`` is the streamer ``generate`` hands each step's tokens to (one row per
choice), on the generating thread; ``LogprobRecorder`` is the logits processor that sees each
step's distribution just before. Pieces go to a queue the answering thread reads.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor
from transformers.generation.streamers import BaseStreamer

from trainer.serving.vocabulary import TokenTexts

LOWEST_LOGPROB = -9999.0
"""Stands in for a log probability of minus infinity, which JSON cannot hold (as OpenAI does)."""


@dataclass(frozen=True)
class Alternative:
    """A token the model weighed: its text, its bytes, its log probability."""

    text: str
    data: bytes
    logprob: float


@dataclass(frozen=True)
class TokenLogprob:
    """A token of the text, where its text starts, and the likeliest tokens in its place."""

    token_id: int
    text: str
    data: bytes
    logprob: float | None
    """None for a prompt's first token, which nothing came before."""
    offset: int
    """Characters of the text before this token's."""
    top: tuple[Alternative, ...]


@dataclass(frozen=True)
class Piece:
    """Text given out for one choice, and the tokens that wrote it (when log probabilities
    were asked for)."""

    index: int
    text: str
    tokens: tuple[TokenLogprob, ...] = ()


class StopScanner:
    """Cuts streamed text at the first stop string, holding back what may begin one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = stops
        self._held = ""
        self.stopped = False
        """Whether a stop string has appeared (the text after it is never given out)."""

    def feed(self, piece: str) -> str:
        """The text of ``piece`` that can be given out now."""
        if self.stopped:
            return ""
        text = self._held + piece
        found = [index for stop in self._stops if (index := text.find(stop)) >= 0]
        if found:
            self.stopped = True
            self._held = ""
            return text[: min(found)]
        keep = max(
            (n for stop in self._stops for n in range(1, len(stop)) if text.endswith(stop[:n])),
            default=0,
        )
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        """What was held back, once the answer has ended without a stop string."""
        held, self._held = self._held, ""
        return held


class LogprobRecorder(LogitsProcessor):
    """Keeps each step's log probabilities, from the model's logits before temperature, top_p
    or a JSON constraint change them; the streamer takes them with the step's tokens."""

    def __init__(self) -> None:
        self._steps: deque[torch.Tensor] = deque()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._steps.append(torch.log_softmax(scores.float(), dim=-1))
        return scores

    def take(self) -> torch.Tensor | None:
        """The oldest step's log probabilities not yet taken (rows by vocabulary)."""
        return self._steps.popleft() if self._steps else None


def read_logprobs(
    step: torch.Tensor, tokens: list[int], top: int
) -> list[tuple[int, float, list[tuple[int, float]]]]:
    """Each row's token, its log probability and the ``top`` likeliest (id, log probability)."""
    rows = torch.arange(step.shape[0], device=step.device)
    chosen = step[rows, torch.tensor(tokens, device=step.device)].tolist()
    if top:
        values, indices = step.topk(top, dim=-1)
        best = [
            list(zip(row_ids, row_values, strict=True))
            for row_ids, row_values in zip(indices.tolist(), values.tolist(), strict=True)
        ]
    else:
        best = [[] for _ in tokens]
    return [(token, chosen[row], best[row]) for row, token in enumerate(tokens)]


def token_logprob(
    texts: TokenTexts,
    token: int,
    logprob: float | None,
    top: list[tuple[int, float]],
    offset: int,
) -> TokenLogprob:
    """One token's entry, with minus infinity written as ``LOWEST_LOGPROB``."""
    return TokenLogprob(
        token_id=token,
        text=texts.text_of(token),
        data=texts.bytes_of(token),
        logprob=None if logprob is None else max(logprob, LOWEST_LOGPROB),
        offset=offset,
        top=tuple(
            Alternative(texts.text_of(i), texts.bytes_of(i), max(value, LOWEST_LOGPROB))
            for i, value in top
        ),
    )


@dataclass
class _Row:
    """One choice's progress: its tokens, its text so far, what is still held back."""

    scanner: StopScanner
    ids: list[int] = field(default_factory=list)
    prefix_offset: int = 0
    read_offset: int = 0
    text_length: int = 0
    """Characters decoded so far."""
    given: list[str] = field(default_factory=list)
    """The text given out."""
    given_length: int = 0
    unplaced: list[tuple[int, float, list[tuple[int, float]]]] = field(default_factory=list)
    """Tokens read whose text is not yet decoded (part of a character)."""
    placed: deque[tuple[int, TokenLogprob]] = field(default_factory=deque)
    """Tokens not yet given out, each with where its text ends."""
    count: int = 0
    """Tokens generated, the end of the answer included."""
    ended_on_eos: bool = False
    finished: bool = False


class ChoiceStreamer(BaseStreamer):
    """Turns each step's tokens (a row per choice) into pieces of text on a queue.

    A choice's text is decoded a few tokens at a time (the prefix-offset way, so a tokenizer
    that drops a leading space or splits a character still decodes right), cut at its first
    stop string, and given out with the tokens that wrote it.
    """

    def __init__(
        self,
        texts: TokenTexts,
        *,
        rows: int,
        stops: tuple[str, ...],
        eos_token_ids: frozenset[int],
        recorder: LogprobRecorder | None,
        top_logprobs: int,
    ) -> None:
        self._texts = texts
        self.rows = [_Row(StopScanner(stops)) for _ in range(rows)]
        self._eos = eos_token_ids
        self._recorder = recorder
        self._top = top_logprobs
        self._prompt_seen = False
        self._ended = threading.Event()
        self.pieces: queue.Queue[Piece | None] = queue.Queue()
        """Pieces as they come; None once the answer has ended."""

    def put(self, value: torch.Tensor) -> None:
        """Read one step's tokens (the first call brings the prompt, which is skipped)."""
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        tokens = value.reshape(-1).tolist()
        step = self._recorder.take() if self._recorder is not None else None
        logprobs = read_logprobs(step, tokens, self._top) if step is not None else None
        for index, row in enumerate(self.rows):
            if row.finished:
                continue
            token = tokens[index]
            row.count += 1
            if token in self._eos:
                row.ended_on_eos = True
                self._finish(index, row)
                continue
            if logprobs is not None and token not in self._texts.special_ids:
                row.unplaced.append(logprobs[index])
            self._give(index, row, self._decode(row, token))

    def end(self) -> None:
        """Give out what every choice still holds back, then close the queue (once)."""
        if self._ended.is_set():
            return
        self._ended.set()
        for index, row in enumerate(self.rows):
            if not row.finished:
                self._finish(index, row)
        self.pieces.put(None)

    def _decode(self, row: _Row, token: int) -> str:
        """The text ``token`` adds, or nothing while it holds part of a character."""
        row.ids.append(token)
        before = self._texts.decode(row.ids[row.prefix_offset : row.read_offset])
        after = self._texts.decode(row.ids[row.prefix_offset :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            row.prefix_offset, row.read_offset = row.read_offset, len(row.ids)
            return after[len(before) :]
        return ""

    def _give(self, index: int, row: _Row, decoded: str, *, last: bool = False) -> None:
        """Put the text given out now and the tokens it completes on the queue."""
        start = row.text_length
        row.text_length += len(decoded)
        if decoded or last:
            for token, logprob, top in row.unplaced:
                entry = token_logprob(self._texts, token, logprob, top, start)
                row.placed.append((row.text_length, entry))
            row.unplaced.clear()
        text = row.scanner.feed(decoded) if decoded else ""
        if last:
            text += row.scanner.flush()
        row.given.append(text)
        row.given_length += len(text)
        released: list[TokenLogprob] = []
        # At a stop, a token that began before it wrote some of the answer; at the end, all
        # of them; else a token goes once all its text has.
        while row.placed:
            ends, entry = row.placed[0]
            if row.scanner.stopped:
                wanted = entry.offset < row.given_length
            else:
                wanted = last or ends <= row.given_length
            if not wanted:
                break
            released.append(row.placed.popleft()[1])
        if row.scanner.stopped:
            row.placed.clear()
            row.finished = True
        if text or released:
            self.pieces.put(Piece(index, text, tuple(released)))

    def _finish(self, index: int, row: _Row) -> None:
        """End a choice: decode what is left (even part of a character) and give it all out."""
        if row.finished:
            return
        rest = self._texts.decode(row.ids[row.prefix_offset :])
        before = self._texts.decode(row.ids[row.prefix_offset : row.read_offset])
        self._give(index, row, rest[len(before) :], last=True)
        row.finished = True
