"""The model server in its own process, reached through the launcher and the client."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from store.errors import ModelError
from trainer.client import list_models, stream_chat
from trainer.launch import TOKEN_ENV, ServerHandle, start_server
from trainer.models import DEFAULT_BASE_MODEL

HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def tiny_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """One server on the tiny model for the whole module; starting one takes a few seconds."""
    home = tmp_path_factory.mktemp("server-home")
    with start_server(
        str(tiny_model_dir),
        log_path=home / "server.log",
        extra_env={"TUNESMITH_HOME": str(home), "HF_HUB_OFFLINE": "1"},
        startup_timeout=120,
    ) as server:
        yield server
    assert server.process.poll() is not None


def _post(
    server: ServerHandle, body: bytes, token: str | None = None, path: str = "/v1/chat/completions"
) -> tuple[int, bytes]:
    """POST raw bytes with the server's token (or the one given); returns status and body."""
    request = urllib.request.Request(
        server.base_url + path,
        data=body,
        headers={"Authorization": f"Bearer {token or server.token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _chat_body(**fields: Any) -> bytes:
    return json.dumps(
        {"model": "base", "messages": HELLO, "max_tokens": 12, "temperature": 0, **fields}
    ).encode()


def test_models_lists_base(tiny_server: ServerHandle) -> None:
    assert list_models(tiny_server.base_url, tiny_server.token) == ["base"]


def test_streamed_and_plain_completions_agree(tiny_server: ServerHandle) -> None:
    deltas = list(
        stream_chat(
            tiny_server.base_url, tiny_server.token, "base", HELLO, max_tokens=12, temperature=0
        )
    )
    status, body = _post(tiny_server, _chat_body())
    completion = json.loads(body)

    assert status == 200
    assert completion["object"] == "chat.completion"
    assert completion["model"] == "base"
    [choice] = completion["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in {"stop", "length"}
    assert 0 < completion["usage"]["completion_tokens"] <= 12
    assert deltas
    assert "".join(deltas) == choice["message"]["content"]


def test_stream_follows_the_openai_event_format(tiny_server: ServerHandle) -> None:
    status, body = _post(
        tiny_server, _chat_body(stream=True, stream_options={"include_usage": True})
    )
    events = body.decode().split("\n\n")

    assert status == 200
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] in {"stop", "length"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] <= 12


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_requests_without_the_token_are_refused(
    tiny_server: ServerHandle, token: str | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(tiny_server.base_url + "/v1/models", headers=headers)

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    with caught.value as error:
        assert error.code == 401
        assert json.loads(error.read())["error"]["code"] == "invalid_api_key"
    status, _ = _post(tiny_server, _chat_body(), token="wrong-token")
    assert status == 401
    with pytest.raises(ModelError, match="answered HTTP 401"):
        list_models(tiny_server.base_url, token)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (json.dumps({"model": "base"}).encode(), 400, "messages"),
        (json.dumps({"messages": HELLO}).encode(), 400, "model"),
        (_chat_body(messages=[{"role": "user"}]), 400, "messages[0]"),
        (_chat_body(max_tokens=0), 400, "max_tokens"),
        (_chat_body(temperature="hot"), 400, "temperature"),
        (_chat_body(model="run-999"), 404, "model"),
        (_chat_body(messages=[{"role": "user", "content": "word " * 600}]), 400, "messages"),
    ],
)
def test_bad_requests_get_openai_errors(
    tiny_server: ServerHandle, body: bytes, status: int, param: str | None
) -> None:
    answered_status, answer = _post(tiny_server, body)

    assert answered_status == status
    error = json.loads(answer)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    assert list_models(tiny_server.base_url, tiny_server.token) == ["base"]


def test_unknown_route_is_404(tiny_server: ServerHandle) -> None:
    status, answer = _post(tiny_server, b"{}", path="/v1/completions")

    assert status == 404
    assert json.loads(answer)["error"]["code"] == "not_found"


def test_token_stays_out_of_the_command_line_and_log(tiny_server: ServerHandle) -> None:
    command = tiny_server.process.args
    assert isinstance(command, list)
    assert tiny_server.token
    assert tiny_server.token not in " ".join(command)
    assert tiny_server.log_path is not None
    log_text = tiny_server.log_path.read_text()
    assert f"READY {tiny_server.base_url}" in log_text
    assert "status: Loading base model" in log_text
    assert tiny_server.token not in log_text


def test_non_loopback_host_needs_a_token(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"^Refusing to listen on 0\.0\.0\.0 without a token"):
        start_server(str(tiny_model_dir), host="0.0.0.0", extra_env={TOKEN_ENV: ""})


@pytest.mark.parametrize("name", ["/no/such/tunesmith-model", "nobody-tunesmith/no-such-model"])
def test_unavailable_model_fails_to_start_with_its_name(name: str) -> None:
    with pytest.raises(ModelError) as caught:
        start_server(name)

    assert name in caught.value.message
    assert "\n" not in caught.value.message


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


def test_client_reports_a_stream_cut_short() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DyingStreamHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    received: list[str] = []
    try:
        with pytest.raises(ModelError, match="ended the answer before it was complete"):
            received.extend(
                stream_chat(f"http://127.0.0.1:{server.server_address[1]}", None, "base", HELLO)
            )
    finally:
        server.shutdown()
        server.server_close()
    assert received == ["Par"]


def test_embedded_model_knows_the_capital_of_france(
    embedded_model_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(embedded_model_home))
    statuses: list[str] = []
    question = [{"role": "user", "content": "What is the capital of France?"}]

    with start_server(DEFAULT_BASE_MODEL, on_status=statuses.append) as server:
        answer = "".join(
            stream_chat(server.base_url, server.token, "base", question, max_tokens=24)
        )

    assert "Paris" in answer
    assert statuses == [f"Loading base model {DEFAULT_BASE_MODEL}..."]
