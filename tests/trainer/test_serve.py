"""The model server over real HTTP: a project's base model and run adapters, OpenAI-compatible."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from agent.judge import JudgedRow, judge_rows
from agent.models import Endpoint, openai_chat_model
from agent.spec import TaskSpec
from agent.work import Work
from store.database import open_database
from store.errors import ModelError
from store.runs import get_run
from tests.conftest import TinyRun
from trainer.control.client import list_models, stream_chat
from trainer.control.launch import ServerHandle, start_server
from trainer.models import DEFAULT_BASE_MODEL

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


def test_the_client_sends_stop_strings_and_seeds(project_server: ServerHandle) -> None:
    def answer(**options: Any) -> str:
        return "".join(
            stream_chat(project_server.base_url, project_server.api_key, "base", HELLO, **options)
        )

    whole = answer(max_tokens=30)
    assert len(whole) > 12
    stop = whole[len(whole) // 2 :][:3]
    assert answer(max_tokens=30, stop=["never-said", stop]) == whole[: whole.find(stop)]
    sampled = answer(max_tokens=12, temperature=1.0, seed=11)
    assert answer(max_tokens=12, temperature=1.0, seed=11) == sampled


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


def test_the_server_process_forces_json_and_continues_prompts(
    project_server: ServerHandle, tuned_name: str
) -> None:
    client = openai.OpenAI(
        base_url=project_server.base_url + "/v1", api_key=project_server.api_key, max_retries=0
    )
    schema = {
        "type": "object",
        "properties": {"colour": {"enum": ["red", "green", "blue"]}, "sure": {"type": "boolean"}},
        "required": ["colour", "sure"],
        "additionalProperties": False,
    }
    answer = client.chat.completions.create(
        model=tuned_name,
        messages=[{"role": "user", "content": "Name colour number 3."}],
        max_tokens=40,
        temperature=1.0,
        n=2,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )
    completion = client.completions.create(
        model="base", prompt="Once upon a time", max_tokens=3, temperature=0, logprobs=1
    )

    for choice in answer.choices:
        value = json.loads(choice.message.content or "")
        assert value["colour"] in schema["properties"]["colour"]["enum"]  # type: ignore[index]
        assert isinstance(value["sure"], bool)
    [continued] = completion.choices
    assert continued.logprobs is not None and continued.logprobs.tokens
    assert "".join(continued.logprobs.tokens) == continued.text


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
        (_chat_body(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
        (_chat_body(stop=["\n", ""]), 400, "stop"),
        (_chat_body(stop=7), 400, "stop"),
        (_chat_body(seed="lucky"), 400, "seed"),
        (_chat_body(n=9), 400, "n"),
        (_chat_body(tools=[{"type": "function"}]), 400, "tools"),
        (_chat_body(response_format={"type": "xml"}), 400, "response_format"),
        (_chat_body(top_logprobs=2), 400, "top_logprobs"),
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
    status, answer = _post(project_server, b"{}", path="/v1/embeddings")
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


def test_our_server_judges_every_answer_held_to_the_verdict_schema(
    project_server: ServerHandle, tuned_name: str
) -> None:
    # The judge's real path with no remote API: the tiny model on our server, whose
    # constrained decoding keeps even it to a verdict that parses.
    endpoint = Endpoint(tuned_name, f"{project_server.base_url}/v1", project_server.api_key)
    model = openai_chat_model(endpoint, max_tokens=40, max_retries=0)
    rows = [
        JudgedRow(1, "Name colour number 16.", "red", {"base": "blue", "tuned": "red"}),
        JudgedRow(2, "Name colour number 17.", "green", {"base": "green", "tuned": "green"}),
    ]
    verdicts = judge_rows(model, TaskSpec(goal="name a colour"), rows, Work())
    scores = [verdict.score for by_system in verdicts.values() for verdict in by_system.values()]
    assert len(scores) == 4
    assert all(score in (0.0, 0.25, 0.5, 0.75, 1.0) for score in scores), verdicts
