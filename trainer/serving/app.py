"""The model server's HTTP side: the two OpenAI routes over one model pool, as a Starlette app.

Generation runs on worker threads so the event loop stays free; a client that hangs up stops
its answer, streamed or whole.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

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
from trainer.serving.inference import (
    Generation,
    ModelPool,
    PromptTooLongError,
    UnknownModelError,
)
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
    parse_chat_request,
)

MAX_BODY_BYTES = 8 * 1024 * 1024

_DONE_EVENT = b"data: [DONE]\n\n"


@dataclass
class ChatService:
    """The two OpenAI endpoints over one model pool, with the project's system prompt."""

    pool: ModelPool
    system_prompt: str | None = None
    """Prepended to every conversation that has no system message, as training did."""
    created: int = field(default_factory=lambda: int(time.time()))

    async def list_models(self, request: Request) -> Response:
        """``GET /v1/models``: ``base`` and every attached run."""
        cards = [ModelCard(id=name, created=self.created) for name in self.pool.names]
        return JSONResponse(ModelList(data=cards).model_dump())

    async def chat_completions(self, request: Request) -> Response:
        """``POST /v1/chat/completions``: one answer, whole or as server-sent events."""
        chat = parse_chat_request(await _read_body(request))
        try:
            self.pool.check_name(chat.model)
        except UnknownModelError as error:
            raise RequestError(
                404,
                f"The model {chat.model!r} does not exist; "
                f"this server has {', '.join(self.pool.names)}.",
                code="model_not_found",
                param="model",
            ) from error
        messages = with_system_prompt(chat.template_messages(), self.system_prompt)
        try:
            prompt = await anyio.to_thread.run_sync(self.pool.prepare, messages, chat.max_tokens)
        except PromptTooLongError as error:
            raise RequestError(
                400, error.message, code="context_length_exceeded", param="messages"
            ) from error
        except InputError as error:
            raise RequestError(400, error.message, param="messages") from error
        generation = self.pool.start(
            chat.model,
            prompt,
            temperature=chat.temperature,
            top_p=chat.top_p,
            stops=chat.stop_sequences,
            seed=chat.seed,
        )
        identity = CompletionIdentity(model=chat.model)
        if chat.stream:
            return _GenerationStream(_events(chat, generation, identity), generation)
        text = await _collect(generation, request)
        completion = ChatCompletion(
            **identity.model_dump(),
            choices=[
                Choice(
                    message=AssistantMessage(content=text),
                    finish_reason=generation.finish_reason,
                )
            ],
            usage=_usage(generation),
        )
        return JSONResponse(completion.model_dump())


def build_app(service: ChatService, *, api_key: str | None) -> Starlette:
    """The ASGI app: the OpenAI routes, OpenAI-style JSON errors, and the bearer token check."""
    return Starlette(
        routes=[
            Route("/v1/models", service.list_models, methods=["GET"]),
            Route("/v1/chat/completions", service.chat_completions, methods=["POST"]),
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


class _GenerationStream(StreamingResponse):
    """An event stream that stops its generation however the response ends (a hang-up too)."""

    def __init__(self, events: AsyncIterator[bytes], generation: Generation) -> None:
        super().__init__(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
        self._generation = generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._generation.cancel()


async def _events(
    chat: ChatRequest, generation: Generation, identity: CompletionIdentity
) -> AsyncIterator[bytes]:
    """The server-sent events of one answer, ending with ``data: [DONE]``."""

    def chunk(delta: dict[str, str], finish_reason: str | None) -> ChatCompletionChunk:
        choice = ChunkChoice(delta=delta, finish_reason=finish_reason)
        return ChatCompletionChunk(**identity.model_dump(), choices=[choice])

    yield _event(chunk({"role": "assistant", "content": ""}, None))
    try:
        async for piece in _pieces(generation):
            yield _event(chunk({"content": piece}, None))
    except ModelError as error:
        # The status line is long gone; an error event is how OpenAI streams report failure.
        yield _event_bytes(RequestError(500, error.message, error_type="server_error").body())
        return
    yield _event(chunk({}, generation.finish_reason))
    if chat.include_usage:
        yield _event(UsageChunk(**identity.model_dump(), choices=[], usage=_usage(generation)))
    yield _DONE_EVENT


async def _pieces(generation: Generation) -> AsyncIterator[str]:
    """The answer's text pieces, each awaited on a worker thread so the event loop stays free."""
    while True:
        # Abandoned on cancel: the caller cancels the generation, which ends the wait soon.
        piece = await anyio.to_thread.run_sync(_next_piece, generation, abandon_on_cancel=True)
        if piece is None:
            return
        yield piece


def _next_piece(generation: Generation) -> str | None:
    return next(generation, None)


async def _collect(generation: Generation, request: Request) -> str:
    """The whole answer; when the client hangs up first, generation stops and 499 is raised."""
    pieces: list[str] = []
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
                pieces.append(piece)
        except ModelError as error:
            failure = error
        finally:
            generation.cancel()
        group.cancel_scope.cancel()
    if disconnected:
        raise RequestError(499, "The client closed the connection.")
    if failure is not None:
        raise failure
    return "".join(pieces)


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


def _usage(generation: Generation) -> Usage:
    """The OpenAI ``usage`` object of a finished answer."""
    prompt_tokens = generation.prompt.prompt_tokens
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=generation.completion_tokens,
        total_tokens=prompt_tokens + generation.completion_tokens,
    )


def _event(payload: BaseModel) -> bytes:
    return _event_bytes(payload.model_dump())


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
