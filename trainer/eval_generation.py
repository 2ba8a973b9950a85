"""Greedy answers to many conversations that share a prefix, and how likely a model finds answers.

Every conversation of one evaluation system starts with the same tokens: the system prompt,
and for the few-shot system every shot too. Those keys and values are computed once per
system; each batch starts from a copy of them, repeated over its rows, and reads only the
rows' own tokens. Within a batch a row's own tokens are left-padded up to the prefix, so the
padding sits between prefix and row, masked, and positions count real tokens only: each row
attends to the prefix and itself, never to another row, and gets the answer it would get if
it were read whole (``tests/trainer/test_eval_generation.py`` checks both give the same).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedTokenizerBase

from store.errors import ModelError, one_line_reason
from trainer.control.forgetting import (
    ANSWER_TOKENS,
    GeneralAnswer,
    GeneralPrompt,
    general_conversation,
    read_general_answers,
    write_general_answers,
)
from trainer.control.launch import BASE_MODEL_NAME
from trainer.serving.inference import ModelPool, generate_sequences

BATCH_SIZE = 8
"""Conversations answered at once."""

MIN_SHARED_TOKENS = 16
"""Fewest shared leading tokens worth computing a cache for."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Answer:
    """One greedy answer and whether the model ended it (rather than running out of tokens)."""

    text: str
    finished: bool


def chat_token_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> list[int]:
    """The token ids of a conversation, chat-templated with the assistant's turn opened."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Leading tokens every row shares, leaving each row at least its last token to read
    (its logits give the first answer token)."""
    if not rows:
        return 0
    first = rows[0]
    shared = min(len(row) for row in rows) - 1
    for row in rows[1:]:
        for position in range(shared):
            if row[position] != first[position]:
                shared = position
                break
    return max(shared, 0)


def generate_answers(
    pool: ModelPool,
    name: str,
    conversations: Sequence[list[dict[str, str]]],
    *,
    max_new_tokens: int,
    reuse_prefix: bool = True,
    batch_size: int = BATCH_SIZE,
    on_progress: Progress | None = None,
) -> list[Answer]:
    """Greedy answers of model ``name`` to ``conversations``, in order; the prefix they all
    share is read once unless ``reuse_prefix`` is false."""
    tokenizer = pool.tokenizer
    rows = [chat_token_ids(tokenizer, messages) for messages in conversations]
    # Prompt tuning's virtual tokens come before any prefix, so a cache of it alone is wrong.
    shared = shared_prefix_length(rows) if reuse_prefix and not pool.virtual_tokens(name) else 0
    if shared < MIN_SHARED_TOKENS:
        shared = 0
    answers: list[Answer] = []
    with pool.lock, pool.selected(name) as model, torch.inference_mode():
        prefix = _prefix_cache(model, rows[0][:shared]) if shared else None
        if prefix is None:
            shared = 0
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            answers.extend(
                _answer_batch(model, pool, batch, shared, prefix, max_new_tokens=max_new_tokens)
            )
            if on_progress is not None:
                on_progress(len(answers), len(rows))
    return answers


def _prefix_cache(model: Any, prefix_ids: list[int]) -> DynamicCache | None:
    """The keys and values of ``prefix_ids``; None for a model whose cache cannot be shared
    this way (a sliding window drops what later rows would need)."""
    cache = DynamicCache(config=model.config)
    if any(getattr(layer, "is_sliding", False) for layer in getattr(cache, "layers", [])):
        return None
    input_ids = torch.tensor([prefix_ids], device=model.device)
    with warnings.catch_warnings():
        # The keyword is being renamed within transformers 5; the old name works across it.
        warnings.simplefilter("ignore", FutureWarning)
        model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), past_key_values=cache)
    return cache


def _answer_batch(
    model: Any,
    pool: ModelPool,
    batch: list[list[int]],
    shared: int,
    prefix: DynamicCache | None,
    *,
    max_new_tokens: int,
) -> list[Answer]:
    tokenizer = pool.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(row) for row in batch) - shared
    input_ids, attention_mask = [], []
    for row in batch:
        own = row[shared:]
        padding = width - len(own)
        input_ids.append(row[:shared] + [pad] * padding + own)
        attention_mask.append([1] * shared + [0] * padding + [1] * len(own))
    options: dict[str, Any] = {}
    if prefix is not None:
        cache = copy.deepcopy(prefix)
        cache.batch_repeat_interleave(len(batch))
        options["past_key_values"] = cache
    ids = torch.tensor(input_ids, device=model.device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        output = generate_sequences(
            model,
            input_ids=ids,
            attention_mask=torch.tensor(attention_mask, device=model.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=pad,
            **options,
        )
    answers = []
    for sequence in output:
        completion = sequence[ids.shape[1] :].tolist()
        finished = any(token in pool.eos_token_ids for token in completion)
        text = str(tokenizer.decode(completion, skip_special_tokens=True)).strip()
        answers.append(Answer(text, finished))
    return answers


def mean_answer_nll(
    pool: ModelPool,
    name: str,
    conversations: Sequence[list[dict[str, str]]],
    answers: Sequence[Answer],
    *,
    batch_size: int = BATCH_SIZE,
) -> float:
    """The mean negative log-likelihood, in nats per token, that model ``name`` gives
    ``answers`` after their conversations: all answer tokens pooled, the end-of-turn token
    counted where the answer had one."""
    tokenizer = pool.tokenizer
    end = tokenizer.eos_token_id
    pairs = []
    for messages, answer in zip(conversations, answers, strict=True):
        answer_ids = tokenizer(answer.text, add_special_tokens=False)["input_ids"]
        if answer.finished and end is not None:
            answer_ids = [*answer_ids, end]
        if answer_ids:
            pairs.append((chat_token_ids(tokenizer, messages), answer_ids))
    if not pairs:
        raise ModelError("no answer tokens to score")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total, count = 0.0, 0
    virtual = pool.virtual_tokens(name)
    with pool.lock, pool.selected(name) as model, torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start : start + batch_size]
            width = max(len(prompt) + len(answer) for prompt, answer in batch)
            # Right-padded: the padding comes after every scored token, so it changes none.
            ids = [
                prompt + answer + [pad] * (width - len(prompt) - len(answer))
                for prompt, answer in batch
            ]
            mask = [[1] * (len(p) + len(a)) + [0] * (width - len(p) - len(a)) for p, a in batch]
            logits = model(
                input_ids=torch.tensor(ids, device=model.device),
                attention_mask=torch.tensor(mask, device=model.device),
            ).logits[:, virtual:]
            for row, (prompt, answer) in enumerate(batch):
                # The logits at position i predict token i + 1.
                predicting = logits[row, len(prompt) - 1 : len(prompt) + len(answer) - 1].float()
                targets = torch.tensor(answer, device=predicting.device)
                log_probs = torch.log_softmax(predicting, dim=-1)
                total -= float(log_probs.gather(1, targets[:, None]).sum())
                count += len(answer)
    return total / count


def general_answers(
    pool: ModelPool,
    base_model: str,
    prompts: list[GeneralPrompt],
    *,
    record: bool = True,
    on_status: Callable[[str], None] | None = None,
) -> list[GeneralAnswer]:
    """The base model's greedy answers to the general prompts: as recorded, else made now
    (and recorded when ``record``). ``pool`` must hold ``base_model``."""
    recorded = read_general_answers(base_model, prompts)
    if recorded is not None:
        return recorded
    if on_status is not None:
        on_status(
            f"Recording the base model's answers to {len(prompts)} general prompts (once per "
            "base model)..."
        )
    conversations = [general_conversation(prompt.prompt) for prompt in prompts]
    answers = generate_answers(pool, BASE_MODEL_NAME, conversations, max_new_tokens=ANSWER_TOKENS)
    made = [
        GeneralAnswer(prompt.prompt, answer.text, answer.finished)
        for prompt, answer in zip(prompts, answers, strict=True)
    ]
    if record:
        try:
            write_general_answers(base_model, prompts, made)
        except OSError as error:
            # A record saves time next time; without one the answers are made again then.
            if on_status is not None:
                on_status(f"Could not record the general answers: {one_line_reason(error)}")
    return made
