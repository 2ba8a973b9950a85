"""A run's rows as TRL takes them, and the checks they must pass before the first step."""

from __future__ import annotations

from itertools import cycle, islice
from typing import Any

from transformers import PreTrainedTokenizerBase
from trl import SFTTrainer

from trainer.control.config import replay_count
from trainer.control.forgetting import GeneralAnswer, general_conversation
from trainer.control.snapshot import with_system_prompt
from trainer.training.reporting import TrainingFailed

LENGTH_MARGIN = 8
"""Tokens of head-room over the longest row, so no example is ever cut."""


def row_messages(row: dict[str, Any], system_prompt: str | None) -> list[dict[str, str]]:
    """A row's conversation as trained: with the project's system prompt where it has none,
    except a replay row, which is asked as the base model's answer was (without it)."""
    if row.get("replay"):
        messages: list[dict[str, str]] = row["messages"]
        return messages
    return with_system_prompt(row["messages"], system_prompt)


def to_prompt_completion(
    rows: list[dict[str, Any]], system_prompt: str | None
) -> list[dict[str, Any]]:
    """Chat rows as TRL's conversational prompt/completion: the loss covers the last answer only."""
    converted = []
    for row in rows:
        messages = row_messages(row, system_prompt)
        converted.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return converted


def replay_rows(
    answers: list[GeneralAnswer], task_rows: int, fraction: float
) -> list[dict[str, Any]]:
    """Rows of the base model's own answers to general prompts, ``fraction`` of the final
    rows, taken in order and from the start again when more are needed than there are.

    Rehearsing its own answers keeps a model near its base on what the task rows never show
    (replay, the standard remedy for forgetting). An answer the base cut at the length limit
    is trained as cut.
    """
    count = replay_count(task_rows, fraction)
    if count and not answers:
        raise TrainingFailed("there are no general answers to replay")
    return [
        {
            "id": None,
            "replay": True,
            "messages": [
                *general_conversation(answer.prompt),
                {"role": "assistant", "content": answer.answer},
            ],
        }
        for answer in islice(cycle(answers), count)
    ]


def longest_row(
    rows: list[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, system_prompt: str | None
) -> tuple[int, int]:
    """The token length of the longest row and that row's example id."""
    longest, longest_id = 0, -1
    for row in rows:
        messages = row_messages(row, system_prompt)
        length = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
        if length > longest:
            longest, longest_id = length, row["id"]
    return longest, longest_id


def check_end_of_turn_is_trained(trainer: SFTTrainer, tokenizer: PreTrainedTokenizerBase) -> None:
    """Fail early unless every training row teaches the model to end its turn.

    With pad == eos a careless collator masks every eos as padding, and the tuned model then
    never stops talking.
    """
    eos_id = tokenizer.eos_token_id
    batch = next(iter(trainer.get_train_dataloader()))
    labels = batch["labels"]
    for row_labels in labels:
        trained = row_labels[row_labels != -100]
        if trained.numel() == 0 or eos_id not in trained.tolist():
            raise TrainingFailed(
                f"the end-of-turn token {tokenizer.eos_token!r} is not in the trained labels; "
                "the tuned model would not learn to stop"
            )
