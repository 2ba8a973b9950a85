"""The model server's OpenAI wire format: the requests it accepts and the objects it answers.

Requests are validated by pydantic; a request that fails gets an OpenAI-style error naming the
first field at fault. No field is dropped unread: a field is honoured, or it is one of
``IGNORED_FIELDS`` (they cannot change an answer), or it is one of ``NEUTRAL_FIELDS`` at the
value that does nothing; any other field is refused by name.

``/v1/chat/completions`` is ``ChatRequest`` here; ``/v1/completions`` is in ``completion_schemas``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from trainer.serving.choices import TokenLogprob
from trainer.serving.json_schema import ANY_OBJECT, SchemaError, Shape, compile_schema

DEFAULT_MAX_TOKENS = 512
"""Completion length when a request names neither ``max_tokens`` nor ``max_completion_tokens``."""

MAX_STOP_SEQUENCES = 4
"""Most stop strings one request may give, as OpenAI allows."""

MAX_CHOICES = 8
"""Most choices (``n``) one request may ask for."""

MAX_TOP_LOGPROBS = 20
"""Most alternatives per token a request may ask for, as OpenAI allows."""

IGNORED_FIELDS = frozenset(
    {
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "metadata",
        "store",
        "service_tier",
        "parallel_tool_calls",
    }
)
"""Fields clients send that cannot change an answer (who asks, billing, storage on OpenAI's
side, tool calls in parallel when there are no tools); read and left alone."""

NEUTRAL_FIELDS: dict[str, tuple[object, ...]] = {
    "frequency_penalty": (0, 0.0),
    "presence_penalty": (0, 0.0),
    "logit_bias": ({},),
    "tools": ([],),
    "functions": ([],),
    "tool_choice": ("none",),
    "function_call": ("none",),
    "modalities": (["text"],),
}
"""Fields the server takes only at the values (or null) that change nothing."""

_DEFAULT_WHEN_NULL = ("max_tokens", "temperature", "top_p", "n", "logprobs")
"""Fields where an explicit ``null`` means the default, as OpenAI reads them."""

SAMPLING_FIELD_ERRORS = {
    "model": "'model' is required and must be a string.",
    "temperature": "'temperature' must be a number from 0 to 2.",
    "top_p": "'top_p' must be a number from 0 to 1.",
    "stream": "'stream' must be true or false.",
    "n": f"'n' must be an integer from 1 to {MAX_CHOICES}.",
    "stop": f"'stop' must be a string or a list of up to {MAX_STOP_SEQUENCES} non-empty strings.",
    "seed": "'seed' must be an integer.",
    "stream_options": "'stream_options' may hold only 'include_usage' and "
    "'include_obfuscation', each true or false.",
}
"""The message a client gets when the field named first in a validation error is at fault."""

CHAT_FIELD_ERRORS = {
    **SAMPLING_FIELD_ERRORS,
    "messages": "'messages' must be a non-empty list.",
    "max_tokens": "'max_tokens' must be a positive integer.",
    "logprobs": "'logprobs' must be true or false.",
    "top_logprobs": f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}, "
    "with 'logprobs': true.",
    "response_format": "'response_format' must be an object.",
}


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


class StreamOptions(BaseModel):
    """What a streamed answer adds: a usage chunk at its end."""

    model_config = ConfigDict(extra="forbid")

    include_usage: StrictBool = False
    include_obfuscation: StrictBool = False
    """Random padding OpenAI adds against side channels; on loopback there is none to add."""


class SamplingRequest(BaseModel):
    """What the two completion requests share: the model, how to sample, where to stop."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr = Field(min_length=1)
    temperature: StrictFloat = Field(1.0, ge=0.0, le=2.0)
    top_p: StrictFloat | None = Field(None, ge=0.0, le=1.0)
    n: StrictInt = Field(1, ge=1, le=MAX_CHOICES)
    """Answers to the same prompt; greedy ones (temperature 0) are all the same answer."""
    stream: StrictBool = False
    stop: StrictStr | list[StrictStr] | None = None
    """Text that ends the answer (left out of it); empty text or an empty list is none."""
    seed: StrictInt | None = None
    """Makes a sampled answer repeatable: the same seed and request give the same answer."""
    stream_options: StreamOptions | None = None

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
        return self.stream_options is not None and self.stream_options.include_usage


class TextPart(BaseModel):
    """One ``{"type": "text"}`` part of a message's content."""

    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    """One message of a conversation; ``developer`` is OpenAI's newer name for ``system``.

    Other fields of a message (a ``name``) are ignored: the chat template has no place for them.
    """

    role: Literal["system", "user", "assistant", "developer"]
    content: StrictStr | list[TextPart]

    def as_template_message(self) -> dict[str, str]:
        """The message as the tokenizer's chat template takes it: a role and its text."""
        role = "system" if self.role == "developer" else self.role
        if isinstance(self.content, str):
            return {"role": role, "content": self.content}
        return {"role": role, "content": "".join(part.text for part in self.content)}


class ChatRequest(SamplingRequest):
    """A ``/v1/chat/completions`` request."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: StrictInt = Field(DEFAULT_MAX_TOKENS, ge=1)
    """The longest answer; ``max_completion_tokens``, when given, is read into it."""
    logprobs: StrictBool = False
    top_logprobs: StrictInt | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: Any = None
    """Read by ``parse_chat_request`` into ``shape``."""
    _shape: Shape | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _read_completion_tokens(cls, data: Any) -> Any:
        """``max_completion_tokens`` wins over ``max_tokens``."""
        if not isinstance(data, dict):
            return data
        resolved = dict(data)
        completion_tokens = resolved.pop("max_completion_tokens", None)
        if completion_tokens is not None:
            resolved["max_tokens"] = completion_tokens
        return resolved

    @field_validator("top_logprobs")
    @classmethod
    def _alternatives_need_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("top_logprobs needs logprobs: true")
        return value

    @property
    def shape(self) -> Shape | None:
        """The JSON shape every choice must have (``response_format``), or None for free text."""
        return self._shape

    @property
    def alternatives(self) -> int | None:
        """Alternatives per token to report, None when log probabilities were not asked for."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def template_messages(self) -> list[dict[str, str]]:
        """The conversation as the tokenizer's chat template takes it."""
        return [message.as_template_message() for message in self.messages]


def without_harmless_fields(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` less the ignored fields, neutral fields at their neutral values and nulls that
    mean a default; raises RequestError for a neutral field set to do something."""
    kept = {key: value for key, value in data.items() if key not in IGNORED_FIELDS}
    for name, neutral in NEUTRAL_FIELDS.items():
        if name not in kept:
            continue
        value = kept.pop(name)
        if value is not None and not any(_same(value, allowed) for allowed in neutral):
            shown = ", ".join(json.dumps(allowed) for allowed in neutral)
            raise RequestError(
                400, f"'{name}' is not supported by this server (only {shown} or null).", param=name
            )
    for name in _DEFAULT_WHEN_NULL:
        if name in kept and kept[name] is None:
            del kept[name]
    return kept


def _same(value: object, neutral: object) -> bool:
    """Equal as JSON values: numbers by value, but true and false are not numbers."""
    if isinstance(value, bool) or isinstance(neutral, bool):
        return value is neutral
    return value == neutral


def parse_chat_request(body: bytes) -> ChatRequest:
    """Validate a chat completion request body; raises RequestError for what cannot be served."""
    try:
        chat = ChatRequest.model_validate(load_json_object(body))
    except ValidationError as error:
        raise refusal(error, CHAT_FIELD_ERRORS) from None
    chat._shape = response_shape(chat.response_format)
    if chat.shape is not None and chat.stop_sequences:
        raise RequestError(
            400,
            "'stop' cannot be combined with a JSON response_format: a stop string would cut "
            "the JSON short.",
            param="stop",
        )
    return chat


def load_json_object(body: bytes) -> Any:
    """The request body's JSON less its harmless fields; raises RequestError for a body that is
    not JSON or sets a neutral field to do something."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, f"The request body is not valid JSON: {exc}") from exc
    return without_harmless_fields(payload) if isinstance(payload, dict) else payload


def response_shape(response_format: object) -> Shape | None:
    """The JSON shape ``response_format`` asks for, None for text; refuses what it cannot force."""
    where = "response_format"
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    others = set(response_format) - {"type"} if isinstance(response_format, dict) else set()
    if kind in ("text", "json_object") and not others:
        return ANY_OBJECT if kind == "json_object" else None
    if kind != "json_schema" or not isinstance(response_format, dict):
        raise RequestError(
            400,
            f'\'{where}\' must be {{"type": "text"}}, {{"type": "json_object"}} or '
            '{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}.',
            param=where,
        )
    described = response_format.get("json_schema")
    if not isinstance(described, dict):
        raise RequestError(400, f"'{where}.json_schema' is missing.", param=where)
    unknown = sorted(others - {"json_schema"}) + [
        f"json_schema.{key}" for key in sorted(described.keys() - _JSON_SCHEMA_FIELDS)
    ]
    if unknown:
        raise RequestError(400, f"'{where}.{unknown[0]}' is not supported.", param=where)
    schema = described.get("schema", {"type": "object"})
    try:
        return compile_schema(schema, f"{where}.json_schema.schema")
    except SchemaError as error:
        raise RequestError(400, f"{error}.", param=where) from None


_JSON_SCHEMA_FIELDS = frozenset({"name", "schema", "strict", "description"})
"""What a ``json_schema`` response format holds; answers follow the schema strictly either way."""


def refusal(error: ValidationError, messages: dict[str, str]) -> RequestError:
    """The OpenAI-style error for the first field at fault, with its message in ``messages``."""
    first = error.errors()[0]
    location = first["loc"]
    if not location:
        return RequestError(400, "The request body must be a JSON object.")
    field = str(location[0])
    if first["type"] == "extra_forbidden" or field not in messages:
        named = ".".join(str(part) for part in location)
        return RequestError(400, f"'{named}' is not supported by this server.", param=field)
    if field != "messages" or len(location) < 2:
        return RequestError(400, messages[field], param=field)
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
    """Tokens read and written for one answer (all its choices)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprob(BaseModel):
    """A token the model weighed in one place: its text, UTF-8 bytes and log probability."""

    token: str
    bytes: list[int] | None
    logprob: float


class ContentLogprob(TopLogprob):
    """A token of the answer, with the likeliest tokens in its place."""

    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    """The log probabilities of a choice's (or a chunk's) tokens."""

    content: list[ContentLogprob] | None
    refusal: None = None


def choice_logprobs(tokens: tuple[TokenLogprob, ...] | list[TokenLogprob]) -> ChoiceLogprobs:
    """The chat format of tokens' log probabilities."""
    return ChoiceLogprobs(
        content=[
            ContentLogprob(
                token=token.text,
                bytes=list(token.data),
                logprob=token.logprob if token.logprob is not None else 0.0,
                top_logprobs=[
                    TopLogprob(token=top.text, bytes=list(top.data), logprob=top.logprob)
                    for top in token.top
                ],
            )
            for token in tokens
        ]
    )


class AssistantMessage(BaseModel):
    """The answer's message in a whole completion."""

    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    """One choice of a whole completion."""

    index: int = 0
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None


class ChunkChoice(BaseModel):
    """One choice of a streamed chunk: the text added since the last chunk."""

    index: int = 0
    delta: dict[str, str]
    logprobs: ChoiceLogprobs | None = None
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
