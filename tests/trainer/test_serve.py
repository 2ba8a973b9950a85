"""The model server over real HTTP: a project's base model and run adapters, OpenAI-compatible."""

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

import anyio
import openai
import pytest
from starlette.testclient import TestClient
from starlette.types import Message, Scope

from store.database import open_database
from store.errors import ModelError
from store.projects import get_project
from store.runs import get_run
from tests.conftest import TinyRun
from trainer.control.client import list_models, stream_chat
from trainer.control.launch import ServerHandle, start_server
from trainer.control.snapshot import with_system_prompt
from trainer.models import DEFAULT_BASE_MODEL, load_base_model
from trainer.serving.inference import (
    Generation,
    ModelPool,
    Prompt,
    UnknownModelError,
    shared_prefix,
)
from trainer.serving.serve import ChatService, build_app

HELLO = [{"role": "user", "content": "Say hello."}]
COLOUR_PROMPT = [{"role": "user", "content": "Name colour number 3."}]


@pytest.fixture(scope="module")
def project_server(
    completed_tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerHandle]:
    """One server for the tiny run's project (base plus its run) for the whole module."""
    log_dir = tmp_path_factory.mktemp("server-log")
    with start_server(
        db_path=completed_tiny_run.db_path,
        project=completed_tiny_run.project,
        log_path=log_dir / "server.log",
        extra_env={"TUNESMITH_HOME": str(completed_tiny_run.home)},
        startup_timeout=120,
    ) as server:
        yield server
    assert server.process.poll() is not None


@pytest.fixture(scope="module")
def tuned_name(completed_tiny_run: TinyRun) -> str:
    return f"run-{completed_tiny_run.run_id}"


def _post(
    server: ServerHandle,
    body: bytes,
    api_key: str | None = None,
    path: str = "/v1/chat/completions",
) -> tuple[int, bytes]:
    """POST raw bytes with the server's key (or the one given); returns status and body."""
    request = urllib.request.Request(
        server.base_url + path,
        data=body,
        headers={"Authorization": f"Bearer {api_key or server.api_key}"},
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


def _answer(server: ServerHandle, model: str, messages: list[dict[str, str]]) -> str:
    status, body = _post(server, _chat_body(model=model, messages=messages, max_tokens=10))
    assert status == 200, body
    content: str = json.loads(body)["choices"][0]["message"]["content"]
    return content


def test_models_lists_base_and_the_projects_completed_runs(
    project_server: ServerHandle, tuned_name: str
) -> None:
    assert list_models(project_server.base_url, project_server.api_key) == ["base", tuned_name]


def test_base_and_tuned_answer_differently_on_one_server(
    project_server: ServerHandle, tuned_name: str
) -> None:
    base_answer = _answer(project_server, "base", COLOUR_PROMPT)
    tuned_answer = _answer(project_server, tuned_name, COLOUR_PROMPT)

    assert base_answer
    assert tuned_answer
    assert tuned_answer != base_answer
    # Greedy answers are repeatable, so switching adapters back and forth leaks no state.
    assert _answer(project_server, "base", COLOUR_PROMPT) == base_answer


def test_streamed_and_plain_completions_agree(
    project_server: ServerHandle, tuned_name: str
) -> None:
    deltas = list(
        stream_chat(
            project_server.base_url,
            project_server.api_key,
            tuned_name,
            HELLO,
            max_tokens=12,
            temperature=0,
        )
    )
    status, body = _post(project_server, _chat_body(model=tuned_name))
    completion = json.loads(body)

    assert status == 200
    assert completion["object"] == "chat.completion"
    assert completion["model"] == tuned_name
    [choice] = completion["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] in {"stop", "length"}
    usage = completion["usage"]
    assert 0 < usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert deltas
    assert "".join(deltas) == choice["message"]["content"]


def test_stream_follows_the_openai_event_format(project_server: ServerHandle) -> None:
    status, body = _post(
        project_server, _chat_body(stream=True, stream_options={"include_usage": True})
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


def test_the_openai_client_talks_to_the_server(
    project_server: ServerHandle, tuned_name: str
) -> None:
    client = openai.OpenAI(
        base_url=project_server.base_url + "/v1", api_key=project_server.api_key, max_retries=0
    )

    assert [model.id for model in client.models.list()] == ["base", tuned_name]
    completion = client.chat.completions.create(
        model=tuned_name,
        messages=[{"role": "user", "content": "Name colour number 3."}],
        max_tokens=10,
        temperature=0,
    )
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model=tuned_name,
            messages=[{"role": "user", "content": "Name colour number 3."}],
            max_tokens=10,
            temperature=0,
            stream=True,
        )
        if chunk.choices
    )
    assert streamed == completion.choices[0].message.content
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="run-999", messages=[{"role": "user", "content": "Hi"}], max_tokens=1
        )
    assert missing.value.code == "model_not_found"
    stranger = openai.OpenAI(
        base_url=project_server.base_url + "/v1", api_key="wrong-key", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()


@pytest.mark.parametrize("api_key", [None, "wrong-key"])
def test_requests_without_the_key_are_refused(
    project_server: ServerHandle, api_key: str | None
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    request = urllib.request.Request(project_server.base_url + "/v1/models", headers=headers)

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    with caught.value as error:
        assert error.code == 401
        assert json.loads(error.read())["error"]["code"] == "invalid_api_key"
    status, _ = _post(project_server, _chat_body(), api_key="wrong-key")
    assert status == 401
    with pytest.raises(ModelError, match="answered HTTP 401"):
        list_models(project_server.base_url, api_key)


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
    project_server: ServerHandle, body: bytes, status: int, param: str | None
) -> None:
    answered_status, answer = _post(project_server, body)

    assert answered_status == status
    error = json.loads(answer)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_unknown_routes_and_methods_answer_json(project_server: ServerHandle) -> None:
    status, answer = _post(project_server, b"{}", path="/v1/completions")
    assert status == 404
    assert json.loads(answer)["error"]["code"] == "not_found"

    status, answer = _post(project_server, b"{}", path="/v1/models")
    assert status == 405
    assert json.loads(answer)["error"]["message"] == "POST is not allowed on /v1/models."


def test_key_stays_out_of_the_command_line_and_log(project_server: ServerHandle) -> None:
    command = project_server.process.args
    assert isinstance(command, list)
    assert project_server.api_key
    assert project_server.api_key not in " ".join(command)
    assert project_server.log_path is not None
    log_text = project_server.log_path.read_text()
    assert f"READY {project_server.base_url}" in log_text
    assert "status: Loading base model" in log_text
    assert "status: Attaching the adapter run-" in log_text
    assert project_server.api_key not in log_text


def test_named_adapters_and_no_key(completed_tiny_run: TinyRun, tiny_model_dir: Path) -> None:
    adapter = get_run(open_database(completed_tiny_run.db_path), completed_tiny_run.run_id)
    assert adapter.adapter_path is not None

    with start_server(
        str(tiny_model_dir), adapters={"colours-v1": Path(adapter.adapter_path)}, api_key=""
    ) as server:
        assert server.api_key is None
        assert list_models(server.base_url, None) == ["base", "colours-v1"]
        assert "".join(stream_chat(server.base_url, None, "colours-v1", HELLO, max_tokens=4))


def test_non_loopback_host_needs_a_key(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"^Refusing to listen on 0\.0\.0\.0 without an API key"):
        start_server(str(tiny_model_dir), host="0.0.0.0", api_key="")


@pytest.mark.parametrize("name", ["/no/such/tunesmith-model", "nobody-tunesmith/no-such-model"])
def test_unavailable_model_fails_to_start_with_its_name(name: str) -> None:
    with pytest.raises(ModelError) as caught:
        start_server(name)

    assert name in caught.value.message
    assert "\n" not in caught.value.message


@pytest.fixture(scope="module")
def pool(completed_tiny_run: TinyRun) -> ModelPool:
    """The tiny run's base model and adapter loaded in this process."""
    db = open_database(completed_tiny_run.db_path)
    project = get_project(db, completed_tiny_run.project)
    run = get_run(db, completed_tiny_run.run_id)
    assert run.adapter_path is not None
    model, tokenizer = load_base_model(project.base_model, on_status=lambda message: None)
    models = ModelPool(model, tokenizer)
    models.attach(f"run-{run.id}", Path(run.adapter_path))
    return models


def test_cancelled_generation_stops_early(pool: ModelPool) -> None:
    prompt = pool.prepare(HELLO, 400)
    generation = pool.start("base", prompt)

    first = next(generation)
    generation.cancel()
    rest = list(generation)

    assert first
    assert generation.completion_tokens < 50
    assert len(rest) < 50
    # The lock is free again: a new answer runs to its end.
    assert pool.generate("base", [HELLO], max_new_tokens=3)


def test_adapter_changes_the_logits_and_base_disables_it(pool: ModelPool, tuned_name: str) -> None:
    import torch

    inputs = pool.encode([COLOUR_PROMPT])
    with pool.lock, torch.inference_mode():
        with pool.selected("base") as model:
            base_logits = model(**inputs).logits
        with pool.selected(tuned_name) as model:
            tuned_logits = model(**inputs).logits
        with pool.selected("base") as model:
            base_again = model(**inputs).logits

    assert not torch.allclose(base_logits, tuned_logits)
    assert torch.equal(base_logits, base_again)
    with pytest.raises(UnknownModelError), pool.selected("run-999"):
        pass


@pytest.mark.parametrize("stream", [True, False])
async def test_a_client_that_hangs_up_cancels_its_answer(
    pool: ModelPool, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Generation] = []
    start = pool.start

    def recording_start(name: str, prompt: Prompt, **sampling: Any) -> Generation:
        started.append(start(name, prompt, **sampling))
        return started[-1]

    monkeypatch.setattr(pool, "start", recording_start)
    app = build_app(ChatService(pool), api_key=None)
    body = _chat_body(max_tokens=400, stream=stream)
    answer_began = anyio.Event()
    received: list[Message] = []

    async def receive() -> Message:
        if not received:
            received.append({"type": "http.request", "body": body, "more_body": False})
        else:
            # A streamed answer is under way before the hang-up; a whole one is still waited for.
            if stream:
                await answer_began.wait()
            received.append({"type": "http.disconnect"})
        return received[-1]

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            answer_began.set()

    # Holding the generation lock keeps the answer from starting, so only a hang-up can end it.
    with pool.lock:
        await app(_http_scope("POST", "/v1/chat/completions", body), receive, send)
        [generation] = started
        assert generation.cancelled
        assert received[-1] == {"type": "http.disconnect"}


def _http_scope(method: str, path: str, body: bytes) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


def test_the_system_prompt_goes_where_a_conversation_has_none(pool: ModelPool) -> None:
    system_prompt = "Answer with one colour name."
    client = TestClient(build_app(ChatService(pool, system_prompt), api_key=None))
    own_system = [{"role": "system", "content": "Be brief."}, *HELLO]

    def prompt_tokens(messages: list[dict[str, str]]) -> int:
        answer = client.post(
            "/v1/chat/completions",
            json={"model": "base", "messages": messages, "max_tokens": 1, "temperature": 0},
        )
        assert answer.status_code == 200, answer.text
        count: int = answer.json()["usage"]["prompt_tokens"]
        return count

    with_project_prompt = with_system_prompt(HELLO, system_prompt)
    assert prompt_tokens(HELLO) == pool.prepare(with_project_prompt, 1).prompt_tokens
    assert prompt_tokens(HELLO) != pool.prepare(HELLO, 1).prompt_tokens
    assert prompt_tokens(own_system) == pool.prepare(own_system, 1).prompt_tokens


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
            stream_chat(server.base_url, server.api_key, "base", question, max_tokens=24)
        )

    assert "Paris" in answer
    assert statuses == [f"Loading base model {DEFAULT_BASE_MODEL}..."]


def test_a_conversation_that_goes_on_reads_only_its_new_tokens(
    pool: ModelPool, tuned_name: str
) -> None:
    first = [
        {"role": "system", "content": "You name colours. " * 12},
        {"role": "user", "content": "Name colour number 3."},
    ]
    answer = "".join(pool.stream(tuned_name, first, max_new_tokens=8))
    going_on = [*first, {"role": "assistant", "content": answer}]
    going_on.append({"role": "user", "content": "And number 4?"})
    total = pool.prepare(going_on, 8).prompt_tokens

    read: list[int] = []
    embeddings = pool._base.get_input_embeddings()
    hook = embeddings.register_forward_pre_hook(lambda module, args: read.append(args[0].shape[1]))
    try:
        reused = "".join(pool.stream(tuned_name, going_on, max_new_tokens=8))
        with_reuse = read[0]
        read.clear()
        pool.reuse_prefixes = False
        afresh = "".join(pool.stream(tuned_name, going_on, max_new_tokens=8))
        without = read[0]
    finally:
        pool.reuse_prefixes = True
        hook.remove()

    # The first forward pass of an answer reads the prompt: all of it only without reuse.
    assert without == total
    assert with_reuse < total - 40
    assert reused == afresh


def test_shared_prefix_counts_leading_tokens_in_common() -> None:
    import torch

    assert shared_prefix(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 9])) == 2
    assert shared_prefix(torch.tensor([1, 2]), torch.tensor([1, 2, 3])) == 2
    assert shared_prefix(torch.tensor([5]), torch.tensor([1])) == 0
