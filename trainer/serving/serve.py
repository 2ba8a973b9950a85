"""The model server: a base model and its run adapters behind an OpenAI-compatible HTTP API.

Run ``python -m trainer.serving.serve --base-model M [--adapter run-3=FOLDER ...]``, or
``python -m trainer.serving.serve --db PATH --project NAME [--run ID ... | --base-only]`` to serve a
project's base model with its completed runs (all of them unless some are named) and its system
prompt. The model ``base`` answers with adapters disabled, ``run-<id>`` with that run's adapter.

Starlette routes the requests and uvicorn serves them; generation runs on worker threads so the
event loop stays free. Once listening the server prints ``READY http://HOST:PORT`` on stdout;
status lines go to stderr as ``status: ...``, and a startup failure as ``error: ...`` with exit
code 2. The bearer token comes from ``$TUNESMITH_API_KEY`` (or ``--api-key``).
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import torch
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from store.database import open_database
from store.errors import InputError, ModelError, NotFoundError, TunesmithError
from store.projects import get_project
from trainer.control.launch import (
    API_KEY_ENV,
    ERROR_PREFIX,
    READY_PREFIX,
    STATUS_PREFIX,
    is_loopback,
    served_runs,
)
from trainer.control.snapshot import with_system_prompt
from trainer.models import load_base_model
from trainer.serving.inference import (
    BASE_MODEL_NAME,
    Generation,
    ModelPool,
    PromptTooLongError,
    UnknownModelError,
    run_model_name,
)

STARTUP_FAILURE_EXIT_CODE = 2

DEFAULT_MAX_TOKENS = 512
"""Completion length when a request names neither ``max_tokens`` nor ``max_completion_tokens``."""

MAX_BODY_BYTES = 8 * 1024 * 1024
GRACEFUL_SHUTDOWN_SECONDS = 5
"""How long answers in flight may go on once the server is asked to stop."""

_CHAT_ROLES = {"system", "user", "assistant"}
_DONE_EVENT = b"data: [DONE]\n\n"


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
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclass(frozen=True)
class ChatRequest:
    """A validated ``/v1/chat/completions`` request."""

    model: str
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float
    top_p: float | None
    stream: bool
    include_usage: bool


def parse_chat_request(body: bytes) -> ChatRequest:
    """Validate a chat completion request body; raises RequestError for what cannot be served."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise RequestError(400, "The request body must be a JSON object.")
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "'model' is required and must be a string.", param="model")
    messages = _parse_messages(payload.get("messages"))
    max_tokens = payload.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = payload.get("max_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise RequestError(400, "'max_tokens' must be a positive integer.", param="max_tokens")
    temperature = _number(payload, "temperature", default=1.0, low=0.0, high=2.0)
    top_p = payload.get("top_p")
    if top_p is not None:
        top_p = _number(payload, "top_p", default=1.0, low=0.0, high=1.0)
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "'stream' must be true or false.", param="stream")
    if payload.get("n", 1) != 1:
        raise RequestError(400, "Only n=1 is supported.", param="n")
    if payload.get("stop") not in (None, [], ""):
        raise RequestError(400, "'stop' sequences are not supported.", param="stop")
    stream_options = payload.get("stream_options") or {}
    include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        stream=stream,
        include_usage=include_usage,
    )


def _parse_messages(raw: object) -> list[dict[str, str]]:
    """Chat messages as the tokenizer's chat template takes them: role and text content."""
    if not isinstance(raw, list) or not raw:
        raise RequestError(400, "'messages' must be a non-empty list.", param="messages")
    messages: list[dict[str, str]] = []
    for index, item in enumerate(raw):
        param = f"messages[{index}]"
        if not isinstance(item, dict):
            raise RequestError(400, f"{param} must be an object.", param=param)
        role = item.get("role")
        if role == "developer":
            role = "system"
        if role not in _CHAT_ROLES:
            raise RequestError(
                400, f"{param}.role must be one of system, user, assistant.", param=param
            )
        messages.append({"role": str(role), "content": _text_content(item.get("content"), param)})
    return messages


def _text_content(content: object, param: str) -> str:
    """A message's content as text: a string, or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part.get("text")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        if len(texts) == len(content) and all(isinstance(text, str) for text in texts):
            return "".join(str(text) for text in texts)
    raise RequestError(400, f"{param}.content must be text.", param=param)


def _number(payload: dict[str, Any], key: str, *, default: float, low: float, high: float) -> float:
    """A numeric field within [low, high], or its default when absent."""
    value = payload.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise RequestError(400, f"'{key}' must be a number from {low:g} to {high:g}.", param=key)
    return float(value)


@dataclass
class ChatService:
    """The two OpenAI endpoints over one model pool, with the project's system prompt."""

    pool: ModelPool
    system_prompt: str | None = None
    """Prepended to every conversation that has no system message, as training did."""
    created: int = field(default_factory=lambda: int(time.time()))

    async def list_models(self, request: Request) -> Response:
        """``GET /v1/models``: ``base`` and every attached run."""
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": name,
                        "object": "model",
                        "created": self.created,
                        "owned_by": "tunesmith",
                    }
                    for name in self.pool.names
                ],
            }
        )

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
        messages = with_system_prompt(chat.messages, self.system_prompt)
        try:
            prompt = await anyio.to_thread.run_sync(self.pool.prepare, messages, chat.max_tokens)
        except PromptTooLongError as error:
            raise RequestError(
                400, error.message, code="context_length_exceeded", param="messages"
            ) from error
        except InputError as error:
            raise RequestError(400, error.message, param="messages") from error
        generation = self.pool.start(
            chat.model, prompt, temperature=chat.temperature, top_p=chat.top_p
        )
        completion = _Completion(chat.model)
        if chat.stream:
            return _GenerationStream(_events(chat, generation, completion), generation)
        text = await _collect(generation, request)
        return JSONResponse(
            {
                **completion.header("chat.completion"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": generation.finish_reason,
                    }
                ],
                "usage": _usage(generation),
            }
        )


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


@dataclass(frozen=True)
class _Completion:
    """The id, time and model every object of one answer repeats."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def header(self, kind: str) -> dict[str, Any]:
        """The fields an answer object of type ``kind`` starts with."""
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def chunk(self, delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
        """One ``chat.completion.chunk`` event."""
        return {
            **self.header("chat.completion.chunk"),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }


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
    chat: ChatRequest, generation: Generation, completion: _Completion
) -> AsyncIterator[bytes]:
    """The server-sent events of one answer, ending with ``data: [DONE]``."""
    yield _event(completion.chunk({"role": "assistant", "content": ""}, None))
    try:
        async for piece in _pieces(generation):
            yield _event(completion.chunk({"content": piece}, None))
    except ModelError as error:
        # The status line is long gone; an error event is how OpenAI streams report failure.
        yield _event(RequestError(500, error.message, error_type="server_error").body())
        return
    yield _event(completion.chunk({}, generation.finish_reason))
    if chat.include_usage:
        yield _event(
            {
                **completion.header("chat.completion.chunk"),
                "choices": [],
                "usage": _usage(generation),
            }
        )
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


def _usage(generation: Generation) -> dict[str, int]:
    """The OpenAI ``usage`` object of a finished answer."""
    prompt_tokens = generation.prompt.prompt_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "total_tokens": prompt_tokens + generation.completion_tokens,
    }


def _event(payload: dict[str, Any]) -> bytes:
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
    first_line = next((line for line in str(error).splitlines() if line.strip()), "")
    message = first_line or type(error).__name__
    return _error_response(RequestError(500, message, error_type="server_error"))


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that prints the READY line once it accepts connections."""

    def __init__(self, config: uvicorn.Config, base_url: str) -> None:
        super().__init__(config)
        self._base_url = base_url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(f"{READY_PREFIX}{self._base_url}", flush=True)


def _listen_socket(host: str, port: int) -> tuple[socket.socket, str]:
    """A socket bound (not yet listening) to host and port, and the base URL it will serve."""
    address = host.strip("[]")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((address, port))
    except OSError as error:
        listener.close()
        raise ModelError(f"Cannot listen on {host}:{port}: {error.strerror}") from error
    shown = f"[{address}]" if ":" in address else address
    return listener, f"http://{shown}:{listener.getsockname()[1]}"


def _load(args: argparse.Namespace) -> ChatService:
    """Load the base model and attach the adapters the arguments name."""
    system_prompt = None
    if args.project is not None:
        if not args.db.is_file():
            raise NotFoundError(f"{args.db}: database not found")
        db = open_database(args.db)
        project = get_project(db, args.project)
        run_ids = [] if args.base_only else (args.run or None)
        adapters = {
            run_model_name(run.id): Path(str(run.adapter_path))
            for run in served_runs(db, project, run_ids)
        }
        base_model, system_prompt = project.base_model, project.system_prompt
    else:
        base_model, adapters = args.base_model, dict(args.adapter)
    model, tokenizer = load_base_model(
        base_model, trust_remote_code=args.trust_remote_code, on_status=_print_status
    )
    if tokenizer.chat_template is None:
        raise ModelError(f"Base model {base_model} has no chat template to chat with.")
    # Module.to() is mistyped by the transformers decorators; the call is the plain torch one.
    movable: Any = model
    movable.to("cuda" if torch.cuda.is_available() else "cpu")
    pool = ModelPool(model, tokenizer)
    for name, folder in adapters.items():
        _print_status(f"Attaching the adapter {name}...")
        pool.attach(name, folder)
    return ChatService(pool, system_prompt)


def _print_status(message: str) -> None:
    print(f"{STATUS_PREFIX}{message}", file=sys.stderr, flush=True)


def _stop_when_stdin_closes(server: uvicorn.Server) -> None:
    """Ask the server to stop once stdin reaches end of file (the launching process is gone)."""
    while sys.stdin.buffer.read(65536):
        pass
    server.should_exit = True


def _adapter_argument(value: str) -> tuple[str, Path]:
    name, separator, folder = value.partition("=")
    if not separator or not name or not folder:
        raise argparse.ArgumentTypeError(f"{value!r} is not NAME=FOLDER")
    if name == BASE_MODEL_NAME:
        raise argparse.ArgumentTypeError(f"{BASE_MODEL_NAME!r} names the base model already")
    return name, Path(folder)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.serving.serve",
        description="Serve a base model and LoRA adapters over an OpenAI-compatible HTTP API.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--base-model", help="Embedded name, folder or hub id.")
    source.add_argument("--project", help="Serve this project's base model and completed runs.")
    parser.add_argument(
        "--adapter",
        action="append",
        type=_adapter_argument,
        default=[],
        metavar="NAME=FOLDER",
        help="With --base-model: answer as NAME with the adapter in FOLDER (repeatable).",
    )
    parser.add_argument("--db", type=Path, help="With --project: the database file.")
    parser.add_argument(
        "--run",
        action="append",
        type=int,
        metavar="ID",
        help="With --project: attach this completed run only (repeatable; default: all).",
    )
    parser.add_argument(
        "--base-only", action="store_true", help="With --project: attach no run at all."
    )
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    parser.add_argument("--port", type=int, default=0, help="Port; 0 picks a free one.")
    parser.add_argument(
        "--api-key", default=None, help=f"Bearer token (better: set ${API_KEY_ENV}, unseen by ps)."
    )
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="Allow the model's own Python code to run (only for models you trust).",
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="Stop when stdin closes, so the server dies with the process that started it.",
    )
    args = parser.parse_args(argv)
    if args.project is not None and args.db is None:
        parser.error("--project needs --db")
    if args.project is None and (args.db or args.run or args.base_only):
        parser.error("--db, --run and --base-only go with --project")
    if args.project is not None and args.adapter:
        parser.error("--adapter goes with --base-model")
    if len({name for name, _ in args.adapter}) != len(args.adapter):
        parser.error("each --adapter needs its own NAME")
    return args


def main(argv: list[str] | None = None) -> int:
    """Load the models, listen, print the READY line and serve until stopped."""
    args = _parse_args(argv)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    try:
        if api_key is None and not is_loopback(args.host):
            raise ModelError(
                f"Refusing to listen on {args.host} without an API key; "
                f"set {API_KEY_ENV} or pass --api-key, or listen on 127.0.0.1."
            )
        # Bound before the slow model load, so a taken port fails at once.
        listener, base_url = _listen_socket(args.host, args.port)
        service = _load(args)
    except TunesmithError as error:
        print(f"{ERROR_PREFIX}{error.message}", file=sys.stderr, flush=True)
        return STARTUP_FAILURE_EXIT_CODE
    except KeyboardInterrupt:
        return 130
    config = uvicorn.Config(
        build_app(service, api_key=api_key),
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = _AnnouncingServer(config, base_url)
    if args.exit_on_stdin_eof:
        threading.Thread(
            target=_stop_when_stdin_closes, args=(server,), name="stdin-watch", daemon=True
        ).start()
    # uvicorn shuts down gracefully on Ctrl-C, then raises it again for its caller.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listener])
    return 0


if __name__ == "__main__":
    sys.exit(main())
