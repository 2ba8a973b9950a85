"""The model server's HTTP side: the OpenAI routes over one model pool, as a Starlette app.

Generation runs on worker threads so the event loop stays free; a client that hangs up stops
its answer, streamed or whole.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

import anyio
import anyio.to_thread
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from store.errors import InputError, ModelError, one_line_reason
from trainer.control.snapshot import with_system_prompt
from trainer.serving.choices import Piece, TokenLogprob
from trainer.serving.completion_schemas import (
    CompletionRequest,
    LegacyLogprobs,
    TextChoice,
    TextCompletion,
    TextCompletionIdentity,
    legacy_logprobs,
    parse_completion_request,
)
from trainer.serving.inference import (
    Generation,
    ModelPool,
    Prompt,
    PromptTooLongError,
    UnknownModelError,
)
from trainer.serving.json_schema import ANY_OBJECT, Shape
from trainer.serving.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    ChunkChoice,
    CompletionIdentity,
    ModelCard,
    ModelList,
    RequestError,
    Usage,
    UsageChunk,
    choice_logprobs,
    parse_chat_request,
)

MAX_BODY_BYTES = 8 * 1024 * 1024

_DONE_EVENT = b"data: [DONE]\n\n"

_PromptT = TypeVar("_PromptT")


@dataclass
class ChatService:
    """The OpenAI endpoints over one model pool, with the project's system prompt."""

    pool: ModelPool
    system_prompt: str | None = None
    """Prepended to every conversation that has no system message, as training did."""
    task_shape: Shape | None = None
    """What ``response_format`` ``json_object`` writes: a JSON task's fields, from the
    project's spec; None for any object."""
    created: int = field(default_factory=lambda: int(time.time()))

    async def list_models(self, request: Request) -> Response:
        """``GET /v1/models``: ``base`` and every attached run."""
        cards = [ModelCard(id=name, created=self.created) for name in self.pool.names]
        return JSONResponse(ModelList(data=cards).model_dump())

    async def chat_completions(self, request: Request) -> Response:
        """``POST /v1/chat/completions``: its choices, whole or as server-sent events."""
        chat = parse_chat_request(await _read_body(request))
        self._check_model(chat.model)
        messages = with_system_prompt(chat.template_messages(), self.system_prompt)
        prompt = await _prepared(self.pool.prepare, messages, chat.max_tokens, param="messages")
        shape = chat.shape
        if shape is ANY_OBJECT and self.task_shape is not None:
            shape = self.task_shape
        if shape is not None:
            await self._check_shape(shape, prompt)
        generation = self.pool.start(
            chat.model,
            prompt,
            temperature=chat.temperature,
            top_p=chat.top_p,
            stops=chat.stop_sequences,
            seed=chat.seed,
            choices=chat.n,
            top_logprobs=chat.alternatives,
            shape=shape,
        )
        identity = CompletionIdentity(model=chat.model)
        if chat.stream:
            current = _Current(generation)
            return _GenerationStream(_chat_events(chat, generation, identity), current)
        answers = await _collect(generation, request)
        completion = ChatCompletion(
            **identity.model_dump(),
            choices=[
                Choice(
                    index=index,
                    message=AssistantMessage(content=answer.text),
                    logprobs=choice_logprobs(answer.tokens) if chat.logprobs else None,
                    finish_reason=generation.finish_reasons[index],
                )
                for index, answer in enumerate(answers)
            ],
            usage=_usage(generation.prompt.prompt_tokens, generation.completion_tokens),
        )
        return JSONResponse(completion.model_dump())

    async def completions(self, request: Request) -> Response:
        """``POST /v1/completions``: each prompt continued as it is (no chat template, no
        system prompt), one prompt after another, whole or as server-sent events."""
        legacy = parse_completion_request(await _read_body(request))
        self._check_model(legacy.model)
        prompts = [
            await _prepared(self.pool.prepare_completion, text, legacy.max_tokens, param="prompt")
            for text in legacy.prompts
        ]
        identity = TextCompletionIdentity(model=legacy.model)
        answers = _LegacyAnswers(self.pool, legacy, prompts)
        if legacy.stream:
            events = _legacy_events(answers, legacy, identity)
            return _GenerationStream(events, answers.current)
        choices: list[TextChoice] = []
        for number in range(len(prompts)):
            echo = await answers.echo(number)
            generation = answers.start(number)
            for index, answer in enumerate(await _collect(generation, request)):
                choices.append(answers.choice(number, index, echo, answer, generation))
        completion = TextCompletion(**identity.model_dump(), choices=choices, usage=answers.usage)
        return JSONResponse(completion.model_dump())

    def _check_model(self, name: str) -> None:
        try:
            self.pool.check_name(name)
        except UnknownModelError as error:
            raise RequestError(
                404,
                f"The model {name!r} does not exist; this server has {', '.join(self.pool.names)}.",
                code="model_not_found",
                param="model",
            ) from error

    async def _check_shape(self, shape: Shape, prompt: Prompt) -> None:
        """Refuse a JSON shape the model cannot be made to write within the answer's length."""
        reason = await anyio.to_thread.run_sync(self.pool.json_refusal, shape)
        if reason is not None:
            raise RequestError(
                400, f"'response_format' cannot be forced: {reason}.", param="response_format"
            )
        if prompt.max_new_tokens < shape.shortest:
            raise RequestError(
                400,
                f"'max_tokens' leaves {prompt.max_new_tokens} tokens to answer in; the shortest "
                f"JSON the response_format allows takes {shape.shortest}.",
                param="max_tokens",
            )


def build_app(service: ChatService, *, api_key: str | None) -> Starlette:
    """The ASGI app: the OpenAI routes, OpenAI-style JSON errors, and the bearer token check."""
    return Starlette(
        routes=[
            Route("/v1/models", service.list_models, methods=["GET"]),
            Route("/v1/chat/completions", service.chat_completions, methods=["POST"]),
            Route("/v1/completions", service.completions, methods=["POST"]),
        ],
        middleware=[Middleware(_RequireApiKey, api_key=api_key)] if api_key else [],
        exception_handlers={
            RequestError: _request_error_response,
            HTTPException: _http_error_response,
            ModelError: _model_error_response,
            Exception: _unexpected_error_response,
        },
    )


class _RequireApiKey:
    """ASGI middleware that answers 401 unless a request carries the server's bearer token."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self._app = app
        self._expected = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scheme, _, credential = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                credential.strip().encode(), self._expected
            ):
                error = RequestError(
                    401,
                    "A valid 'Authorization: Bearer <key>' header is required.",
                    error_type="authentication_error",
                    code="invalid_api_key",
                )
                await _error_response(error)(scope, receive, send)
                return
        await self._app(scope, receive, send)


@dataclass
class _Current:
    """The generation a response is waiting on now (a legacy request runs one per prompt)."""

    generation: Generation | None = None

    def cancel(self) -> None:
        if self.generation is not None:
            self.generation.cancel()


class _GenerationStream(StreamingResponse):
    """An event stream that stops its generation however the response ends (a hang-up too)."""

    def __init__(self, events: AsyncIterator[bytes], current: _Current) -> None:
        super().__init__(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
        self._current = current

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._current.cancel()


@dataclass
class _Answer:
    """One choice's whole text and (when asked for) its tokens' log probabilities."""

    text: str = ""
    tokens: list[TokenLogprob] = field(default_factory=list)


async def _prepared(
    prepare: Callable[[_PromptT, int], Prompt], source: _PromptT, max_tokens: int, *, param: str
) -> Prompt:
    """The tokenized prompt, prepared on a worker thread; what cannot be answered is a 400."""
    try:
        return await anyio.to_thread.run_sync(prepare, source, max_tokens)
    except PromptTooLongError as error:
        raise RequestError(
            400, error.message, code="context_length_exceeded", param=param
        ) from error
    except InputError as error:
        raise RequestError(400, error.message, param=param) from error


async def _chat_events(
    chat: ChatRequest, generation: Generation, identity: CompletionIdentity
) -> AsyncIterator[bytes]:
    """The server-sent events of a chat answer, ending with ``data: [DONE]``."""

    def chunk(
        index: int, delta: dict[str, str], finish_reason: str | None, piece: Piece | None = None
    ) -> ChatCompletionChunk:
        logprobs = choice_logprobs(piece.tokens) if chat.logprobs and piece else None
        choice = ChunkChoice(
            index=index, delta=delta, logprobs=logprobs, finish_reason=finish_reason
        )
        return ChatCompletionChunk(**identity.model_dump(), choices=[choice])

    for index in range(chat.n):
        yield _event(chunk(index, {"role": "assistant", "content": ""}, None))
    try:
        async for piece in _pieces(generation):
            yield _event(chunk(piece.index, {"content": piece.text}, None, piece))
    except ModelError as error:
        yield _failure_event(error)
        return
    for index, reason in enumerate(generation.finish_reasons):
        yield _event(chunk(index, {}, reason))
    if chat.include_usage:
        usage = _usage(generation.prompt.prompt_tokens, generation.completion_tokens)
        yield _event(UsageChunk(**identity.model_dump(), choices=[], usage=usage))
    yield _DONE_EVENT


class _LegacyAnswers:
    """A legacy request's prompts, answered one after another, and the choices they make."""

    def __init__(self, pool: ModelPool, legacy: CompletionRequest, prompts: list[Prompt]) -> None:
        self._pool = pool
        self._legacy = legacy
        self._prompts = prompts
        self._generations: list[Generation] = []
        self.current = _Current()
        """The prompt being answered now."""

    async def echo(self, number: int) -> _Answer:
        """What goes before prompt ``number``'s continuations: nothing, or (with ``echo``) the
        prompt and, with ``logprobs``, its tokens' log probabilities."""
        if not self._legacy.echo:
            return _Answer()
        tokens: list[TokenLogprob] = []
        if self._legacy.logprobs is not None:
            tokens = await anyio.to_thread.run_sync(
                self._pool.prompt_logprobs,
                self._legacy.model,
                self._prompts[number],
                self._legacy.logprobs,
            )
        return _Answer(self._prompt_text(number), tokens)

    def start(self, number: int) -> Generation:
        """Start continuing prompt ``number``."""
        legacy = self._legacy
        generation = self._pool.start(
            legacy.model,
            self._prompts[number],
            temperature=legacy.temperature,
            top_p=legacy.top_p,
            stops=legacy.stop_sequences,
            seed=legacy.seed,
            choices=legacy.n,
            top_logprobs=legacy.logprobs,
        )
        self._generations.append(generation)
        self.current.generation = generation
        return generation

    def index(self, number: int, choice: int) -> int:
        """The index of a prompt's choice among all: OpenAI's order, prompt by prompt."""
        return number * self._legacy.n + choice

    def logprobs(
        self,
        number: int,
        echoed: Sequence[TokenLogprob],
        answered: Sequence[TokenLogprob],
    ) -> LegacyLogprobs | None:
        """Tokens' log probabilities, the continuation's offsets counted on from the prompt's
        text (echoed or not, as OpenAI counts them); None unless ``logprobs`` was asked for."""
        if self._legacy.logprobs is None:
            return None
        start = len(self._prompt_text(number))
        moved = [replace(token, offset=token.offset + start) for token in answered]
        return legacy_logprobs([*echoed, *moved])

    def choice(
        self, number: int, choice: int, echo: _Answer, answer: _Answer, generation: Generation
    ) -> TextChoice:
        """One whole choice of prompt ``number``."""
        return TextChoice(
            text=echo.text + answer.text,
            index=self.index(number, choice),
            logprobs=self.logprobs(number, echo.tokens, answer.tokens),
            finish_reason=generation.finish_reasons[choice],
        )

    @property
    def usage(self) -> Usage:
        """Tokens read and written over the prompts answered so far."""
        return _usage(
            sum(generation.prompt.prompt_tokens for generation in self._generations),
            sum(generation.completion_tokens for generation in self._generations),
        )

    def _prompt_text(self, number: int) -> str:
        prompt = self._legacy.prompts[number]
        return prompt if isinstance(prompt, str) else self._pool.token_texts.decode(prompt)


async def _legacy_events(
    answers: _LegacyAnswers, legacy: CompletionRequest, identity: TextCompletionIdentity
) -> AsyncIterator[bytes]:
    """The server-sent events of a legacy answer, prompt by prompt, ending with ``[DONE]``."""

    def chunk(
        index: int, text: str, finish_reason: str | None, logprobs: LegacyLogprobs | None
    ) -> TextCompletion:
        choice = TextChoice(text=text, index=index, logprobs=logprobs, finish_reason=finish_reason)
        return TextCompletion(**identity.model_dump(), choices=[choice])

    for number in range(len(legacy.prompts)):
        echo = await answers.echo(number)
        if legacy.echo:
            for choice in range(legacy.n):
                logprobs = answers.logprobs(number, echo.tokens, ())
                yield _event(chunk(answers.index(number, choice), echo.text, None, logprobs))
        generation = answers.start(number)
        try:
            async for piece in _pieces(generation):
                logprobs = answers.logprobs(number, (), piece.tokens)
                yield _event(chunk(answers.index(number, piece.index), piece.text, None, logprobs))
        except ModelError as error:
            yield _failure_event(error)
            return
        for choice, reason in enumerate(generation.finish_reasons):
            yield _event(chunk(answers.index(number, choice), "", reason, None))
    if legacy.include_usage:
        usage_chunk = TextCompletion(**identity.model_dump(), choices=[], usage=answers.usage)
        yield _event(usage_chunk)
    yield _DONE_EVENT


async def _pieces(generation: Generation) -> AsyncIterator[Piece]:
    """The answer's pieces, each awaited on a worker thread so the event loop stays free."""
    while True:
        # Abandoned on cancel: the caller cancels the generation, which ends the wait soon.
        piece = await anyio.to_thread.run_sync(_next_piece, generation, abandon_on_cancel=True)
        if piece is None:
            return
        yield piece


def _next_piece(generation: Generation) -> Piece | None:
    return next(generation, None)


async def _collect(generation: Generation, request: Request) -> list[_Answer]:
    """Every choice whole; when the client hangs up first, generation stops and 499 is raised."""
    answers = [_Answer() for _ in range(generation.choices)]
    failure: ModelError | None = None
    disconnected = False

    async with anyio.create_task_group() as group:

        async def watch_for_hang_up() -> None:
            nonlocal disconnected
            while (await request.receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            group.cancel_scope.cancel()

        group.start_soon(watch_for_hang_up)
        try:
            async for piece in _pieces(generation):
                answers[piece.index].text += piece.text
                answers[piece.index].tokens += piece.tokens
        except ModelError as error:
            failure = error
        finally:
            generation.cancel()
        group.cancel_scope.cancel()
    if disconnected:
        raise RequestError(499, "The client closed the connection.")
    if failure is not None:
        raise failure
    return answers


async def _read_body(request: Request) -> bytes:
    """The request body, refused beyond MAX_BODY_BYTES before more of it is read."""
    too_large = RequestError(413, f"The request body must be at most {MAX_BODY_BYTES} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise too_large
    except ClientDisconnect:
        raise RequestError(499, "The client closed the connection.") from None
    return bytes(body)


def _usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    """The OpenAI ``usage`` object of finished answers."""
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def _event(payload: BaseModel) -> bytes:
    return _event_bytes(payload.model_dump())


def _failure_event(error: ModelError) -> bytes:
    """A failure mid-stream: the status line is long gone, and an error event is how OpenAI
    streams report it."""
    return _event_bytes(RequestError(500, error.message, error_type="server_error").body())


def _event_bytes(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _error_response(error: RequestError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _request_error_response(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestError)
    return _error_response(error)


def _http_error_response(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        message = f"No route for {request.method} {request.url.path}."
        return _error_response(RequestError(404, message, code="not_found"))
    message = f"{request.method} is not allowed on {request.url.path}."
    if error.status_code != 405:
        message = str(error.detail)
    return _error_response(RequestError(error.status_code, message))


def _model_error_response(request: Request, error: Exception) -> Response:
    assert isinstance(error, ModelError)
    return _error_response(RequestError(500, error.message, error_type="server_error"))


def _unexpected_error_response(request: Request, error: Exception) -> Response:
    # Starlette re-raises after this answer, so uvicorn still logs the traceback.
    return _error_response(RequestError(500, one_line_reason(error), error_type="server_error"))
