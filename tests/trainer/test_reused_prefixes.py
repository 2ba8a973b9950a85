"""Kept keys and values: two conversations that take turns on one model both keep theirs."""

from __future__ import annotations

from trainer.serving.inference import ModelPool


def _chat(system: str, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system * 12}, {"role": "user", "content": question}]


def test_two_conversations_taking_turns_each_start_from_their_own_cache(
    pool: ModelPool,
) -> None:
    teacher = "You write one new support ticket at a time. "
    labeller = "You answer each ticket with its label. "
    read: list[int] = []
    embeddings = pool._base.get_input_embeddings()
    hook = embeddings.register_forward_pre_hook(lambda module, args: read.append(args[0].shape[1]))
    try:
        for system, question in [(teacher, "A ticket about billing."), (labeller, "Ticket one")]:
            "".join(pool.stream("base", _chat(system, question), max_new_tokens=4))
        read.clear()
        again = _chat(teacher, "A ticket about shipping.")
        "".join(pool.stream("base", again, max_new_tokens=4))
        with_reuse = read[0]
    finally:
        hook.remove()

    total = pool.prepare(again, 4).prompt_tokens
    # The labeller's turn in between did not push the teacher's prefix out.
    assert with_reuse < total - 40
