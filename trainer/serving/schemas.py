"""The model server's OpenAI wire format: the chat request it accepts and the objects it answers.

Requests are validated by pydantic; a request that fails gets an OpenAI-style error naming the
first field at fault, in the order OpenAI documents them.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_MAX_TOKENS = 512
"""Completion length when a request names neither ``max_tokens`` nor ``max_completion_tokens``."""

MAX_STOP_SEQUENCES = 4
"""Most stop strings one request may give, as OpenAI allows."""

_DEFAULT_WHEN_NULL = ("max_tokens", "temperature", "top_p")
"""Fields where an explicit ``null`` means the default, as OpenAI reads them."""

_FIELD_ERRORS = {
    "model": "'model' is required and must be a string.",
    "messages": "'messages' must be a non-empty list.",
    "max_tokens": "'max_tokens' must be a positive integer.",
    "temperature": "'temperature' must be a number from 0 to 2.",
    "top_p": "'top_p' must be a number from 0 to 1.",
    "stream": "'stream' must be true or false.",
    "n": "Only n=1 is supported.",
    "stop": f"'stop' must be a string or a list of up to {MAX_STOP_SEQUENCES} non-empty strings.",
    "seed": "'seed' must be an integer.",
}
"""The message a client gets when the field named first in a validation error is at fault."""


class RequestError(Exception):
    """A request the server refuses, answered with an OpenAI-style error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        """The JSON error object OpenAI clients understand."""
        detail = ErrorDetail(
            message=self.message, type=self.error_type, param=self.param, code=self.code
        )
        return ErrorBody(error=detail).model_dump()


class TextPart(BaseModel):
    """One ``{"type": "text"}`` part of a message's content."""

    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    """One message of a conversation; ``developer`` is OpenAI's newer name for ``system``."""

    role: Literal["system", "user", "assistant", "developer"]
    content: StrictStr | list[TextPart]

    def as_template_message(self) -> dict[str, str]:
        """The message as the tokenizer's chat template takes it: a role and its text."""
        role = "system" if self.role == "developer" else self.role
        if isinstance(self.content, str):
            return {"role": role, "content": self.content}
        return {"role": role, "content": "".join(part.text for part in self.content)}


class ChatRequest(BaseModel):
    """A ``/v1/chat/completions`` request; fields the server has no use for are ignored."""

    model: StrictStr = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt = Field(DEFAULT_MAX_TOKENS, ge=1)
    """The longest answer; ``max_completion_tokens``, when given, is read into it."""
    temperature: StrictFloat = Field(1.0, ge=0.0, le=2.0)
    top_p: StrictFloat | None = Field(None, ge=0.0, le=1.0)
    stream: StrictBool = False
    n: Literal[1] = 1
    stop: StrictStr | list[StrictStr] | None = None
    """Text that ends the answer (left out of it); empty text or an empty list is none."""
    seed: StrictInt | None = None
    """Makes a sampled answer repeatable: the same seed and request give the same answer."""
    stream_options: Any = None
    """Read for ``include_usage`` alone; anything else in it is ignored."""

    @model_validator(mode="before")
    @classmethod
    def _resolve_defaults(cls, data: Any) -> Any:
        """``max_completion_tokens`` wins over ``max_tokens``; a null field takes its default."""
        if not isinstance(data, dict):
            return data
        resolved = dict(data)
        if resolved.get("max_completion_tokens") is not None:
            resolved["max_tokens"] = resolved["max_completion_tokens"]
        for name in _DEFAULT_WHEN_NULL:
            if name in resolved and resolved[name] is None:
                del resolved[name]
        return resolved

    @field_validator("stop")
    @classmethod
    def _few_non_empty_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and (len(value) > MAX_STOP_SEQUENCES or not all(value)):
            raise ValueError(f"up to {MAX_STOP_SEQUENCES} non-empty stop strings")
        return value

    @property
    def stop_sequences(self) -> tuple[str, ...]:
        """The stop strings, none for an absent or empty ``stop``."""
        if isinstance(self.stop, str):
            return (self.stop,) if self.stop else ()
        return tuple(self.stop or ())

    @property
    def include_usage(self) -> bool:
        """Whether a streamed answer ends with a usage chunk."""
        options = self.stream_options
        return isinstance(options, dict) and options.get("include_usage") is True

    def template_messages(self) -> list[dict[str, str]]:
        """The conversation as the tokenizer's chat template takes it."""
        return [message.as_template_message() for message in self.messages]


def parse_chat_request(body: bytes) -> ChatRequest:
    """Validate a chat completion request body; raises RequestError for what cannot be served."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, f"The request body is not valid JSON: {exc}") from exc
    try:
        return ChatRequest.model_validate(payload)
    except ValidationError as error:
        raise _refusal(error) from None


def _refusal(error: ValidationError) -> RequestError:
    """The OpenAI-style error for the first field at fault."""
    location = error.errors()[0]["loc"]
    if not location:
        return RequestError(400, "The request body must be a JSON object.")
    field = str(location[0])
    if field != "messages" or len(location) < 2:
        return RequestError(400, _FIELD_ERRORS[field], param=field)
    param = f"messages[{location[1]}]"
    if len(location) == 2:
        return RequestError(400, f"{param} must be an object.", param=param)
    if location[2] == "role":
        message = f"{param}.role must be one of system, user, assistant."
        return RequestError(400, message, param=param)
    return RequestError(400, f"{param}.content must be text.", param=param)


class ErrorDetail(BaseModel):
    """The ``error`` object of an OpenAI error answer."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """An OpenAI error answer."""

    error: ErrorDetail


class ModelCard(BaseModel):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tunesmith"


class ModelList(BaseModel):
    """The answer to ``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]


class Usage(BaseModel):
    """Tokens read and written for one answer."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    """The answer's message in a whole completion."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    """The one choice of a whole completion."""

    index: int = 0
    message: AssistantMessage
    finish_reason: str | None


class ChunkChoice(BaseModel):
    """The one choice of a streamed chunk: the text added since the last chunk."""

    index: int = 0
    delta: dict[str, str]
    finish_reason: str | None


class CompletionIdentity(BaseModel):
    """The id, time and model every object of one answer repeats."""

    id: str = Field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str


class ChatCompletion(CompletionIdentity):
    """A whole answer."""

    object: Literal["chat.completion"] = "chat.completion"
    choices: list[Choice]
    usage: Usage


class ChatCompletionChunk(CompletionIdentity):
    """One server-sent event of a streamed answer."""

    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]


class UsageChunk(ChatCompletionChunk):
    """The last event of a streamed answer that asked for usage: no choices, the token counts."""

    usage: Usage
