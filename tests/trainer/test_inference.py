"""The model pool: base and adapters on one copy of the weights, cancelling, reused prefixes."""

from __future__ import annotations

import pytest

from trainer.serving.inference import ModelPool, UnknownModelError, shared_prefix

HELLO = [{"role": "user", "content": "Say hello."}]
COLOUR_PROMPT = [{"role": "user", "content": "Name colour number 3."}]


def test_cancelled_generation_stops_early(pool: ModelPool) -> None:
    prompt = pool.prepare(HELLO, 400)
    generation = pool.start("base", prompt)

    first = next(generation)
    generation.cancel()
    rest = list(generation)

    assert first
    assert generation.completion_tokens < 50
    assert len(rest) < 50
    # The lock is free again: a new answer runs to its end.
    assert pool.generate("base", [HELLO], max_new_tokens=3)


def test_adapter_changes_the_logits_and_base_disables_it(pool: ModelPool, tuned_name: str) -> None:
    import torch

    inputs = pool.encode([COLOUR_PROMPT])
    with pool.lock, torch.inference_mode():
        with pool.selected("base") as model:
            base_logits = model(**inputs).logits
        with pool.selected(tuned_name) as model:
            tuned_logits = model(**inputs).logits
        with pool.selected("base") as model:
            base_again = model(**inputs).logits

    assert not torch.allclose(base_logits, tuned_logits)
    assert torch.equal(base_logits, base_again)
    with pytest.raises(UnknownModelError), pool.selected("run-999"):
        pass


def test_a_conversation_that_goes_on_reads_only_its_new_tokens(
    pool: ModelPool, tuned_name: str
) -> None:
    first = [
        {"role": "system", "content": "You name colours. " * 12},
        {"role": "user", "content": "Name colour number 3."},
    ]
    answer = "".join(pool.stream(tuned_name, first, max_new_tokens=8))
    going_on = [*first, {"role": "assistant", "content": answer}]
    going_on.append({"role": "user", "content": "And number 4?"})
    total = pool.prepare(going_on, 8).prompt_tokens

    read: list[int] = []
    embeddings = pool._base.get_input_embeddings()
    hook = embeddings.register_forward_pre_hook(lambda module, args: read.append(args[0].shape[1]))
    try:
        reused = "".join(pool.stream(tuned_name, going_on, max_new_tokens=8))
        with_reuse = read[0]
        read.clear()
        pool.reuse_prefixes = False
        afresh = "".join(pool.stream(tuned_name, going_on, max_new_tokens=8))
        without = read[0]
    finally:
        pool.reuse_prefixes = True
        hook.remove()

    # The first forward pass of an answer reads the prompt: all of it only without reuse.
    assert without == total
    assert with_reuse < total - 40
    assert reused == afresh


def test_shared_prefix_counts_leading_tokens_in_common() -> None:
    import torch

    assert shared_prefix(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 9])) == 2
    assert shared_prefix(torch.tensor([1, 2]), torch.tensor([1, 2, 3])) == 2
    assert shared_prefix(torch.tensor([5]), torch.tensor([1])) == 0
