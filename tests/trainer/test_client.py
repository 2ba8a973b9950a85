"""The model server's client against servers that fail: nobody listening, a stream cut short."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from store.errors import ModelError
from trainer.control.client import stream_chat

HELLO = [{"role": "user", "content": "Say hello."}]


def test_client_reports_a_server_that_is_not_there() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(ModelError, match="connection refused"):
        list(stream_chat(f"http://127.0.0.1:{port}", None, "base", HELLO))


class _DyingStreamHandler(BaseHTTPRequestHandler):
    """Sends one chunk of an answer and hangs up, like a server that crashed mid-stream."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        chunk = {"choices": [{"index": 0, "delta": {"content": "Par"}, "finish_reason": None}]}
        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A local HTTP server answering with ``handler``; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_client_reports_a_stream_cut_short() -> None:
    received: list[str] = []
    with (
        _serving(_DyingStreamHandler) as base_url,
        pytest.raises(ModelError, match="ended the answer before it was complete"),
    ):
        received.extend(stream_chat(base_url, None, "base", HELLO))
    assert received == ["Par"]


class _FailingStreamHandler(_DyingStreamHandler):
    """Records each request's headers, then sends one chunk and an OpenAI-style error event."""

    headers_seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.headers_seen.append({name.lower(): value for name, value in self.headers.items()})
        super().do_POST()
        error = {"error": {"message": "CUDA out of memory\nat step 3", "type": "server_error"}}
        self.wfile.write(b"data: " + json.dumps(error).encode() + b"\n\n")


def test_client_reports_an_error_event_and_sends_only_the_servers_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A developer's OpenAI account settings are for OpenAI, never for the model server.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-developer-secret")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-developer")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-developer")
    _FailingStreamHandler.headers_seen.clear()

    with _serving(_FailingStreamHandler) as base_url:
        for api_key in (None, "server-key"):
            with pytest.raises(ModelError) as raised:
                list(stream_chat(base_url, api_key, "base", HELLO))
            assert raised.value.message == "The model server failed: CUDA out of memory"

    without_key, with_key = _FailingStreamHandler.headers_seen
    assert "authorization" not in without_key
    assert with_key["authorization"] == "Bearer server-key"
    sent = json.dumps(_FailingStreamHandler.headers_seen)
    assert "developer" not in sent
