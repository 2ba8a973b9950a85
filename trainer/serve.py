"""The model server: one base model behind an OpenAI-compatible HTTP API (stdlib http.server).

Run ``python -m trainer.serve --base-model M``. Once listening it prints ``READY http://HOST:PORT``
on stdout; status lines go to stderr as ``status: ...``, and a startup failure as ``error: ...``
with exit code 2. The bearer token comes from ``--token`` or ``$TUNESMITH_SERVER_TOKEN``.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import ipaddress
import json
import os
import socket
import socketserver
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch
from transformers import (
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from store.errors import ModelError, TunesmithError
from trainer.launch import ERROR_PREFIX, READY_PREFIX, STATUS_PREFIX, TOKEN_ENV
from trainer.models import load_base_model

BASE_MODEL_ID = "base"
"""Model id that answers with the base weights, no adapter."""

STARTUP_FAILURE_EXIT_CODE = 2

DEFAULT_MAX_TOKENS = 512
"""Completion length when a request names neither ``max_tokens`` nor ``max_completion_tokens``."""

MAX_BODY_BYTES = 8 * 1024 * 1024
_CHAT_ROLES = {"system", "user", "assistant"}


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


@dataclass(frozen=True)
class PreparedPrompt:
    """A request's prompt, tokenized with the chat template and ready to generate from."""

    request: ChatRequest
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    max_new_tokens: int

    @property
    def prompt_tokens(self) -> int:
        """Number of prompt tokens."""
        return int(self.input_ids.shape[1])


@dataclass
class GenerationOutcome:
    """What a finished generation reports besides its text: token counts and why it stopped."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"

    def usage(self) -> dict[str, int]:
        """The OpenAI ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


class _CancelOnEvent(StoppingCriteria):
    """Stops generation once an event is set (the client went away)."""

    def __init__(self, cancelled: threading.Event) -> None:
        self._cancelled = cancelled

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: object
    ) -> torch.BoolTensor:
        stop = torch.full(
            (input_ids.shape[0],),
            self._cancelled.is_set(),
            dtype=torch.bool,
            device=input_ids.device,
        )
        return stop  # type: ignore[return-value]


@dataclass
class _GenerateResult:
    sequences: torch.Tensor | None = None
    error: BaseException | None = None


@dataclass
class ModelService:
    """One base model and its tokenizer, plus the LoRA adapters served on the same weights."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    adapters: dict[str, Path] = field(default_factory=dict)
    """Adapter model id (``run-<id>``) -> adapter folder."""
    created: int = field(default_factory=lambda: int(time.time()))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def model_ids(self) -> list[str]:
        """Ids a request may name: ``base`` and every adapter."""
        return [BASE_MODEL_ID, *sorted(self.adapters)]

    def prepare(self, request: ChatRequest) -> PreparedPrompt:
        """Check the model id and tokenize the conversation, before any response is sent."""
        if request.model not in self.model_ids():
            raise RequestError(
                404,
                f"The model {request.model!r} does not exist; "
                f"this server has {', '.join(self.model_ids())}.",
                code="model_not_found",
                param="model",
            )
        try:
            # A BatchEncoding at run time; the stubs describe the tokenize=False variants too.
            encoded: Any = self.tokenizer.apply_chat_template(
                request.messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
            )
        # The chat template is Jinja code shipped with the model; it raises what it likes.
        except Exception as exc:
            raise RequestError(
                400, f"The model's chat template rejected the messages: {exc}", param="messages"
            ) from exc
        input_ids: torch.Tensor = encoded["input_ids"]
        attention_mask: torch.Tensor = encoded["attention_mask"]
        prompt_tokens = int(input_ids.shape[1])
        max_new_tokens = request.max_tokens
        context_length = getattr(self.model.config, "max_position_embeddings", None)
        if isinstance(context_length, int):
            if prompt_tokens >= context_length:
                raise RequestError(
                    400,
                    f"The prompt has {prompt_tokens} tokens; the model's context holds "
                    f"{context_length}.",
                    code="context_length_exceeded",
                    param="messages",
                )
            max_new_tokens = min(max_new_tokens, context_length - prompt_tokens)
        return PreparedPrompt(request, input_ids, attention_mask, max_new_tokens)

    def stream(
        self, prompt: PreparedPrompt, outcome: GenerationOutcome
    ) -> Generator[str, None, None]:
        """Yield the reply's text as it is generated, one generation at a time; fills outcome."""
        with self._lock, self._weights_for(prompt.request.model):
            streamer = TextIteratorStreamer(
                self.tokenizer, skip_prompt=True, skip_special_tokens=True
            )
            cancelled = threading.Event()
            result = _GenerateResult()
            worker = threading.Thread(
                target=self._generate,
                args=(prompt, streamer, cancelled, result),
                name="generate",
                daemon=True,
            )
            worker.start()
            try:
                for text in streamer:
                    if text:
                        yield text
            finally:
                cancelled.set()
                worker.join()
            if result.error is not None:
                raise ModelError(f"Generation failed: {result.error}")
            outcome.prompt_tokens = prompt.prompt_tokens
            outcome.completion_tokens, outcome.finish_reason = self._count(prompt, result)

    @contextlib.contextmanager
    def _weights_for(self, model_id: str) -> Iterator[None]:
        """Put the shared weights in the state that ``model_id`` answers with."""
        if model_id != BASE_MODEL_ID:
            # The place where a run's LoRA adapter (self.adapters[model_id]) is switched on.
            raise RequestError(
                501, f"Serving the adapter {model_id!r} is not supported yet.", code="not_supported"
            )
        yield

    def _generate(
        self,
        prompt: PreparedPrompt,
        streamer: TextIteratorStreamer,
        cancelled: threading.Event,
        result: _GenerateResult,
    ) -> None:
        """Run ``generate`` on a worker thread, feeding the streamer."""
        request = prompt.request
        sampling: dict[str, Any] = {"do_sample": False}
        if request.temperature > 0:
            sampling = {"do_sample": True, "temperature": request.temperature}
            if request.top_p is not None:
                sampling["top_p"] = request.top_p
        pad_token_id = self.tokenizer.pad_token_id
        if pad_token_id is None:
            pad_token_id = self.tokenizer.eos_token_id
        # torch's Module.__getattr__ typing hides generate() and the streamer's end() is untyped.
        model: Any = self.model
        untyped_streamer: Any = streamer
        try:
            with torch.inference_mode():
                result.sequences = model.generate(
                    input_ids=prompt.input_ids.to(model.device),
                    attention_mask=prompt.attention_mask.to(model.device),
                    max_new_tokens=prompt.max_new_tokens,
                    pad_token_id=pad_token_id,
                    streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([_CancelOnEvent(cancelled)]),
                    **sampling,
                )
        except Exception as exc:
            result.error = exc
            untyped_streamer.end()

    def _count(self, prompt: PreparedPrompt, result: _GenerateResult) -> tuple[int, str]:
        """Completion token count and the OpenAI finish reason of a finished generation."""
        if result.sequences is None:
            return 0, "stop"
        completion_ids = result.sequences[0, prompt.prompt_tokens :].tolist()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        ended_on_eos = bool(completion_ids) and completion_ids[-1] in eos_ids
        if len(completion_ids) >= prompt.max_new_tokens and not ended_on_eos:
            return len(completion_ids), "length"
        return len(completion_ids), "stop"


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


class ModelHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server holding the model service and the bearer token."""

    daemon_threads = True

    def __init__(self, host: str, port: int, service: ModelService, token: str | None) -> None:
        host = host.strip("[]")
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.service = service
        self.token = token
        super().__init__((host, port), _ChatHandler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host, which can stall."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def base_url(self) -> str:
        """The URL clients use, with the port actually bound."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.server_port}"


class _ChatHandler(BaseHTTPRequestHandler):
    """Routes ``/v1/models`` and ``/v1/chat/completions``; every error answers as JSON."""

    server: ModelHTTPServer
    protocol_version = "HTTP/1.0"
    server_version = "tunesmith"
    _responded = False

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        try:
            # The body is read before any answer so that closing never resets the connection.
            body = self._read_body() if method == "POST" else b""
            self._authorize()
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/v1/models" and method == "GET":
                self._list_models()
            elif path == "/v1/chat/completions" and method == "POST":
                self._chat_completion(parse_chat_request(body))
            elif path in ("/v1/models", "/v1/chat/completions"):
                raise RequestError(405, f"{method} is not allowed on {path}.")
            else:
                raise RequestError(404, f"No route for {method} {path}.", code="not_found")
        except RequestError as exc:
            self._send_error(exc)
        except (BrokenPipeError, ConnectionResetError):
            return
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            self._send_error(RequestError(500, str(exc), error_type="server_error"))

    def _read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise RequestError(411, "A Content-Length header is required.")
        try:
            length = int(length_header)
        except ValueError as exc:
            raise RequestError(400, "Content-Length must be an integer.") from exc
        if length < 0 or length > MAX_BODY_BYTES:
            raise RequestError(413, f"The request body must be at most {MAX_BODY_BYTES} bytes.")
        return self.rfile.read(length)

    def _authorize(self) -> None:
        expected = self.server.token
        if not expected:
            return
        given = self.headers.get("Authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode(), expected.encode()
        ):
            raise RequestError(
                401,
                "A valid 'Authorization: Bearer <token>' header is required.",
                error_type="authentication_error",
                code="invalid_api_key",
            )

    def _list_models(self) -> None:
        service = self.server.service
        self._send_json(
            200,
            {
                "object": "list",
                "data": [
                    {
                        "id": model_id,
                        "object": "model",
                        "created": service.created,
                        "owned_by": "tunesmith",
                    }
                    for model_id in service.model_ids()
                ],
            },
        )

    def _chat_completion(self, request: ChatRequest) -> None:
        service = self.server.service
        prompt = service.prepare(request)
        outcome = GenerationOutcome()
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        if not request.stream:
            with contextlib.closing(service.stream(prompt, outcome)) as pieces:
                text = "".join(pieces)
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": request.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": outcome.finish_reason,
                        }
                    ],
                    "usage": outcome.usage(),
                },
            )
            return

        def chunk(delta: dict[str, str], finish_reason: str | None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": request.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }

        self._start_events()
        self._send_event(chunk({"role": "assistant", "content": ""}, None))
        try:
            with contextlib.closing(service.stream(prompt, outcome)) as pieces:
                for text in pieces:
                    self._send_event(chunk({"content": text}, None))
        except RequestError as exc:
            self._send_event(exc.body())
            return
        except ModelError as exc:
            self._send_event(RequestError(500, exc.message, error_type="server_error").body())
            return
        self._send_event(chunk({}, outcome.finish_reason))
        if request.include_usage:
            usage_chunk = chunk({}, None)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = outcome.usage()
            self._send_event(usage_chunk)
        self.wfile.write(b"data: [DONE]\n\n")

    def _start_events(self) -> None:
        self._responded = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _send_event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self._responded = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, error: RequestError) -> None:
        if self._responded:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send_json(error.status, error.body())


def is_loopback(host: str) -> bool:
    """Whether a host name or address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _print_status(message: str) -> None:
    print(f"{STATUS_PREFIX}{message}", file=sys.stderr, flush=True)


def _exit_when_stdin_closes(server: ModelHTTPServer) -> None:
    """Shut the server down once stdin reaches end of file (the launching process is gone)."""
    while sys.stdin.buffer.read(65536):
        pass
    server.shutdown()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.serve",
        description="Serve a base model over an OpenAI-compatible HTTP API.",
    )
    parser.add_argument("--base-model", required=True, help="Embedded name, folder or hub id.")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    parser.add_argument("--port", type=int, default=0, help="Port; 0 picks a free one.")
    parser.add_argument(
        "--token", default=None, help=f"Bearer token (better: set ${TOKEN_ENV}, unseen by ps)."
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Load the model, listen, print the READY line and serve until stopped."""
    args = _parse_args(argv)
    token = args.token or os.environ.get(TOKEN_ENV) or None
    try:
        if token is None and not is_loopback(args.host):
            raise ModelError(
                f"Refusing to listen on {args.host} without a token; "
                f"set {TOKEN_ENV} or pass --token, or listen on 127.0.0.1."
            )
        model, tokenizer = load_base_model(
            args.base_model, trust_remote_code=args.trust_remote_code, on_status=_print_status
        )
        if tokenizer.chat_template is None:
            raise ModelError(f"Base model {args.base_model} has no chat template to chat with.")
        # Module.to() is mistyped by the transformers decorators; the call is the plain torch one.
        movable: Any = model
        movable.to("cuda" if torch.cuda.is_available() else "cpu")
        try:
            server = ModelHTTPServer(args.host, args.port, ModelService(model, tokenizer), token)
        except OSError as exc:
            raise ModelError(f"Cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    except TunesmithError as exc:
        print(f"{ERROR_PREFIX}{exc.message}", file=sys.stderr, flush=True)
        return STARTUP_FAILURE_EXIT_CODE
    if args.exit_on_stdin_eof:
        threading.Thread(
            target=_exit_when_stdin_closes, args=(server,), name="stdin-watch", daemon=True
        ).start()
    print(f"{READY_PREFIX}{server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
