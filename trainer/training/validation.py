"""A run's checks on its validation rows: greedy answers scored as the evaluation scores them.

``ValidatedTrainer`` adds the score to the metrics of each evaluation (``eval_validation_score``,
next to ``eval_loss``), so the progress callback, the Trainer's log history and a resume all see
the same checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.trainer_utils import EvalLoopOutput

from trainer.control.config import CHECK_ROWS
from trainer.control.launch import BASE_MODEL_NAME
from trainer.control.scoring import score
from trainer.control.snapshot import with_system_prompt
from trainer.control.stopping import validation_metric
from trainer.eval_generation import generate_answers
from trainer.evaluation import answer_room
from trainer.serving.inference import ModelPool
from trainer.training.checkpoints import AtomicCheckpointTrainer

SCORE_METRIC = "validation_score"
"""The name of the task score among an evaluation's metrics (prefixed ``eval_``)."""


class ValidationScorer:
    """Scores the model in training on (at most ``CHECK_ROWS`` of) the validation rows."""

    def __init__(
        self,
        rows: Sequence[dict[str, Any]],
        system_prompt: str | None,
        tokenizer: PreTrainedTokenizerBase,
        labels: Sequence[str],
    ) -> None:
        checked = rows[:CHECK_ROWS]
        self.conversations = [
            with_system_prompt(row["messages"][:-1], system_prompt) for row in checked
        ]
        self.references = [row["messages"][-1]["content"] for row in checked]
        self.metric = validation_metric(self.references, labels)
        """The task metric, or None for free text, which only eval loss can check."""
        self.tokenizer = tokenizer
        self.max_new_tokens = answer_room(tokenizer, self.references) if checked else 0
        self._pool: ModelPool | None = None

    def score(self, model: PreTrainedModel) -> float | None:
        """The mean task metric of ``model``'s greedy answers (adapter on), or None."""
        if self.metric is None or not self.conversations:
            return None
        if self._pool is None:
            # The model being trained, adapter and all, answers as the pool's only model.
            self._pool = ModelPool(model, self.tokenizer, reuse_prefixes=False)
        answers = generate_answers(
            self._pool, BASE_MODEL_NAME, self.conversations, max_new_tokens=self.max_new_tokens
        )
        values = [
            score(answer.text, reference)[self.metric]
            for answer, reference in zip(answers, self.references, strict=True)
        ]
        return sum(value or 0.0 for value in values) / len(values)


class ValidatedTrainer(AtomicCheckpointTrainer):
    """An AtomicCheckpointTrainer whose evaluations also score the validation rows' answers."""

    def __init__(self, *args: Any, scorer: ValidationScorer | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scorer = scorer

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> EvalLoopOutput:
        output = super().evaluation_loop(*args, **kwargs)
        if self._scorer is not None and output.metrics is not None:
            model: Any = self.model
            value = self._scorer.score(model)
            if value is not None:
                prefix = kwargs.get("metric_key_prefix", "eval")
                output.metrics[f"{prefix}_{SCORE_METRIC}"] = value
        return output
