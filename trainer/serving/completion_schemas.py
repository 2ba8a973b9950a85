"""The legacy ``/v1/completions`` wire format: a plain prompt continued, OpenAI's older shape.

Evaluation harnesses send it: several prompts at once, token ids for prompts, and ``echo``
with ``logprobs`` (and ``max_tokens`` 0) to score a prompt's own tokens.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr, ValidationError

from trainer.serving.choices import TokenLogprob
from trainer.serving.schemas import (
    MAX_TOP_LOGPROBS,
    SAMPLING_FIELD_ERRORS,
    CompletionIdentity,
    RequestError,
    SamplingRequest,
    Usage,
    load_json_object,
    refusal,
)

DEFAULT_COMPLETION_TOKENS = 16
"""Completion length when a request names no ``max_tokens``, as OpenAI's default."""

MAX_PROMPTS = 32
"""Most prompts one request may give."""

_FIELD_ERRORS = {
    **SAMPLING_FIELD_ERRORS,
    "prompt": f"'prompt' must be a string, a list of up to {MAX_PROMPTS} strings, a list of "
    "token ids, or a list of such lists.",
    "max_tokens": "'max_tokens' must be an integer of 0 or more.",
    "logprobs": f"'logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}.",
    "echo": "'echo' must be true or false.",
    "best_of": "'best_of' is not supported by this server (only null or the same as 'n').",
    "suffix": "'suffix' is not supported by this server (only null or \"\").",
}
"""The message a client gets when the field named first in a validation error is at fault."""


class CompletionRequest(SamplingRequest):
    """A ``/v1/completions`` request."""

    prompt: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    max_tokens: StrictInt = Field(DEFAULT_COMPLETION_TOKENS, ge=0)
    """The longest continuation; 0 with ``echo`` scores the prompt alone."""
    logprobs: StrictInt | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    """Report each token's log probability and this many likeliest alternatives."""
    echo: StrictBool = False
    """Put the prompt before its continuation (with its tokens' log probabilities)."""
    best_of: StrictInt | None = None
    suffix: Literal[""] | None = None

    @property
    def prompts(self) -> list[str | list[int]]:
        """Each prompt: text, or token ids."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        ids: list[int] = []
        prompts: list[str | list[int]] = []
        for item in self.prompt:
            if isinstance(item, int):
                ids.append(item)
            else:
                prompts.append(item)
        return [ids] if ids else prompts


def parse_completion_request(body: bytes) -> CompletionRequest:
    """Validate a legacy completion request body; raises RequestError for what cannot be served."""
    try:
        request = CompletionRequest.model_validate(load_json_object(body))
    except ValidationError as error:
        raise refusal(error, _FIELD_ERRORS) from None
    if request.best_of is not None and request.best_of != request.n:
        raise refusal_for("best_of")
    if not 0 < len(request.prompts) <= MAX_PROMPTS or not all(request.prompts):
        raise refusal_for("prompt")
    return request


def refusal_for(field: str) -> RequestError:
    """The error naming ``field`` with its message."""
    return RequestError(400, _FIELD_ERRORS[field], param=field)


class LegacyLogprobs(BaseModel):
    """Log probabilities in the legacy shape: lists side by side, one entry per token."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]
    """Where each token's text starts, counted from the start of the prompt (echoed or not)."""


def legacy_logprobs(tokens: list[TokenLogprob]) -> LegacyLogprobs:
    """Tokens' log probabilities in the legacy shape.

    Each token's alternatives hold the token itself too, so up to ``logprobs`` + 1 of them.
    """
    return LegacyLogprobs(
        tokens=[token.text for token in tokens],
        token_logprobs=[token.logprob for token in tokens],
        top_logprobs=[
            None
            if token.logprob is None
            else {**{top.text: top.logprob for top in token.top}, token.text: token.logprob}
            for token in tokens
        ],
        text_offset=[token.offset for token in tokens],
    )


class TextChoice(BaseModel):
    """One choice of a legacy completion (or a piece of it, streamed)."""

    text: str
    index: int
    logprobs: LegacyLogprobs | None = None
    finish_reason: str | None


class TextCompletionIdentity(CompletionIdentity):
    """The id, time and model every object of one legacy answer repeats."""

    id: str = Field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")


class TextCompletion(TextCompletionIdentity):
    """A whole legacy answer, or one streamed piece of it (then without usage)."""

    object: Literal["text_completion"] = "text_completion"
    choices: list[TextChoice]
    usage: Usage | None = None
