"""Answers that share a prefix: the prefix's cache changes no answer and saves reading it again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trainer.control.few_shot import Shot
from trainer.control.launch import BASE_MODEL_NAME
from trainer.eval_generation import (
    MIN_SHARED_TOKENS,
    Answer,
    chat_token_ids,
    generate_answers,
    mean_answer_nll,
    shared_prefix_length,
)
from trainer.evaluation import few_shot_conversation
from trainer.models import load_base_model
from trainer.serving.inference import ModelPool


@pytest.fixture(scope="module")
def base_pool(tiny_model_dir: Path) -> ModelPool:
    """The tiny model alone (no adapter)."""
    model, tokenizer = load_base_model(str(tiny_model_dir), on_status=lambda message: None)
    return ModelPool(model, tokenizer, reuse_prefixes=False)


def few_shot_rows(count: int) -> list[list[dict[str, str]]]:
    """Rows of different lengths behind the same system prompt and shots."""
    shots = [Shot(f"Name colour number {n}.", ["red", "green", "blue"][n % 3]) for n in range(6)]
    return [
        few_shot_conversation(
            shots,
            [
                {"role": "system", "content": "Answer with one colour."},
                {"role": "user", "content": f"Name colour number {n}" + " please" * n + "."},
            ],
        )
        for n in range(count)
    ]


@pytest.fixture()
def tokens_read(base_pool: ModelPool) -> Iterator[list[int]]:
    """Token positions each forward pass of the model reads, recorded as they happen."""
    counts: list[int] = []

    def count(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        counts.append(int(kwargs["input_ids"].numel()))

    with base_pool.selected(BASE_MODEL_NAME) as model:
        handle = model.register_forward_pre_hook(count, with_kwargs=True)
    yield counts
    handle.remove()


def test_shared_prefix_leaves_every_row_its_last_token() -> None:
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert shared_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert shared_prefix_length([[7, 1], [8, 1]]) == 0
    assert shared_prefix_length([]) == 0


def test_the_prefix_cache_gives_the_answers_of_reading_each_row_whole(
    base_pool: ModelPool, tokens_read: list[int]
) -> None:
    rows = few_shot_rows(5)
    ids = [chat_token_ids(base_pool.tokenizer, row) for row in rows]
    shared = shared_prefix_length(ids)
    assert shared >= MIN_SHARED_TOKENS, "the shots are a shared prefix"
    # Alone and whole: no cache, no padding, nothing another row could change.
    whole = generate_answers(
        base_pool, BASE_MODEL_NAME, rows, max_new_tokens=12, reuse_prefix=False, batch_size=1
    )
    read_whole = sum(tokens_read)
    tokens_read.clear()
    cached = generate_answers(base_pool, BASE_MODEL_NAME, rows, max_new_tokens=12, batch_size=2)
    assert cached == whole
    assert all(answer.text for answer in cached)
    # The prefix is read once, not once per row (a little padding aside).
    assert sum(tokens_read) < read_whole - (len(rows) - 2) * shared


def test_a_model_finds_its_own_greedy_answers_likelier_than_other_answers(
    base_pool: ModelPool,
) -> None:
    rows = few_shot_rows(4)
    own = generate_answers(base_pool, BASE_MODEL_NAME, rows, max_new_tokens=8)
    others = [Answer(answer.text, answer.finished) for answer in own[1:] + own[:1]]
    own_nll = mean_answer_nll(base_pool, BASE_MODEL_NAME, rows, own)
    other_nll = mean_answer_nll(base_pool, BASE_MODEL_NAME, rows, others)
    assert 0 < own_nll < other_nll
