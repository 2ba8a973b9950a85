"""Who the Chat area talks to: the agent, the base model, a tuned run, or base and tuned at once.

Conversations with the models are kept per model, so switching between "base", "run 3" and
"base + run 3" goes on with what each model said before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from trainer.control.launch import BASE_MODEL_NAME, run_model_name

MODEL_MEMORY = 6
"""Earlier exchanges sent with a prompt: enough to go on, short of the model's context."""


@dataclass(frozen=True)
class Side:
    """One column of answers: which model, and its column title."""

    side: str
    """``base`` or ``tuned``."""
    model: str
    """The model's name on the server (``base`` or ``run-<id>``)."""
    title: str


@dataclass(frozen=True)
class Target:
    """An entry of the "talk to" selector."""

    key: str
    label: str
    sides: tuple[Side, ...] = ()
    """The models that answer, left to right; none for the agent."""

    @property
    def is_agent(self) -> bool:
        """Whether messages go to the agent's interview rather than to models."""
        return not self.sides


AGENT = Target("agent", "Agent")
BASE_SIDE = Side("base", BASE_MODEL_NAME, "base")


def tuned_side(run_id: int) -> Side:
    """The column of a tuned run."""
    return Side("tuned", run_model_name(run_id), f"tuned · run {run_id}")


def targets_for(run_ids: Sequence[int]) -> list[Target]:
    """The agent, the base model, then each completed run (newest first) alone and with base."""
    targets = [AGENT, Target("base", "Base model", (BASE_SIDE,))]
    for run_id in sorted(run_ids, reverse=True):
        tuned = tuned_side(run_id)
        targets.append(Target(f"both-{run_id}", f"Base + run {run_id}", (BASE_SIDE, tuned)))
        targets.append(Target(f"run-{run_id}", f"Run {run_id} (tuned)", (tuned,)))
    return targets


@dataclass
class Exchange:
    """A prompt and the complete answers of the models that answered it."""

    prompt: str
    answers: dict[str, str] = field(default_factory=dict)
    """Answer by model name; a model still answering (or cut off) is not in it."""


def conversation(exchanges: Sequence[Exchange], model: str, prompt: str) -> list[dict[str, str]]:
    """The messages to send ``model``: its last exchanges, then ``prompt``."""
    messages: list[dict[str, str]] = []
    answered = [exchange for exchange in exchanges if model in exchange.answers]
    for exchange in answered[-MODEL_MEMORY:]:
        messages.append({"role": "user", "content": exchange.prompt})
        messages.append({"role": "assistant", "content": exchange.answers[model]})
    messages.append({"role": "user", "content": prompt})
    return messages


class ModelTalk:
    """The talk with the models: every prompt with its complete answers, and who was asked last."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        """The prompts asked, oldest first, with the answers that came back whole."""
        self.target: Target = AGENT
        """Who the last prompt went to."""
        self.request = 0
        """The number of the last ask; answers to an older one are dropped."""

    def ask(self, target: Target, prompt: str) -> dict[str, list[dict[str, str]]]:
        """Start a turn: the conversation to send each side of ``target``, by side."""
        self.request += 1
        conversations = {
            side.side: conversation(self.exchanges, side.model, prompt) for side in target.sides
        }
        self.exchanges.append(Exchange(prompt))
        self.target = target
        return conversations

    def answered(self, side: str, text: str) -> bool:
        """Keep ``side``'s complete answer; whether every side of the turn has answered now."""
        model = next(s.model for s in self.target.sides if s.side == side)
        self.exchanges[-1].answers[model] = text
        return len(self.exchanges[-1].answers) == len(self.target.sides)

    def forget(self) -> None:
        """Start afresh: no model is sent what was said before (asks keep their numbers)."""
        self.exchanges = []

    def unanswered(self) -> list[Side]:
        """The sides of the last turn still without a complete answer."""
        if not self.exchanges:
            return []
        answers = self.exchanges[-1].answers
        return [side for side in self.target.sides if side.model not in answers]
