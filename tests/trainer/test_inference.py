"""The model pool: base and adapters on one copy of the weights, cancelling, reused prefixes,
several choices, and log probabilities that are the model's own."""

from __future__ import annotations

import pytest

from tests.trainer.one_thread import one_torch_thread
from trainer.serving.inference import ModelPool, UnknownModelError, shared_prefix

pytestmark = pytest.mark.usefixtures(one_torch_thread.__name__)

HELLO = [{"role": "user", "content": "Say hello."}]
COLOUR_PROMPT = [{"role": "user", "content": "Name colour number 3."}]


def test_cancelled_generation_stops_early(pool: ModelPool) -> None:
    prompt = pool.prepare(HELLO, 400)
    generation = pool.start("base", prompt)

    first = next(generation)
    generation.cancel()
    rest = list(generation)

    assert first.text
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


def test_sampled_choices_are_rows_of_one_batch_and_greedy_ones_one_answer(
    pool: ModelPool,
) -> None:
    def answers(temperature: float) -> tuple[list[str], list[str], int]:
        generation = pool.start(
            "base", pool.prepare(HELLO, 6), temperature=temperature, seed=1, choices=3
        )
        texts = ["", "", ""]
        for piece in generation:
            texts[piece.index] += piece.text
        return texts, generation.finish_reasons, generation.completion_tokens

    sampled, reasons, tokens = answers(1.0)
    greedy, _, greedy_tokens = answers(0.0)

    assert len(set(sampled)) == 3
    assert reasons == ["length"] * 3
    assert tokens == 18
    assert greedy == [greedy[0]] * 3 and greedy[0]
    assert greedy_tokens == 18


def test_an_answers_log_probabilities_are_the_models_own(pool: ModelPool) -> None:
    prompt = pool.prepare_completion("Name colour number 3.", 6)
    generation = pool.start("base", prompt, temperature=1.0, seed=2, top_logprobs=2)
    pieces = list(generation)
    text = "".join(piece.text for piece in pieces)
    generated = [token for piece in pieces for token in piece.tokens]
    # The same tokens read as a prompt, after the ones before them, weigh the same.
    ids = prompt.input_ids[0].tolist() + [token.token_id for token in generated]
    whole = pool.prepare_completion(ids, 0)
    scored = pool.prompt_logprobs("base", whole, 2)[-len(generated) :]

    assert [token.text for token in scored] == [token.text for token in generated]
    assert [token.logprob for token in scored] == pytest.approx(
        [token.logprob for token in generated], abs=1e-4
    )
    assert [token.offset for token in generated] == [
        len("".join(token.text for token in generated[:index])) for index in range(len(generated))
    ]
    assert "".join(token.text for token in generated) == text
