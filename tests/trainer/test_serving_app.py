"""The model server's ASGI app in this process, over loopback with the real openai SDK and
langchain-openai: hang-ups and timeouts stop answers, stop strings and seeds, several choices,
log probabilities, JSON answers that always parse, legacy completions, refusals by name."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import anyio
import openai
import pytest
import torch
import uvicorn
from openai.types.chat import ChatCompletionMessageParam
from pydantic import BaseModel, SecretStr
from starlette.testclient import TestClient
from starlette.types import Message, Scope
from transformers import LogitsProcessor, LogitsProcessorList

from tests.trainer.one_thread import one_torch_thread
from trainer.control.snapshot import with_system_prompt
from trainer.serving.app import ChatService, build_app
from trainer.serving.choices import StopScanner
from trainer.serving.inference import Generation, ModelPool, Prompt
from trainer.serving.json_schema import task_object
from trainer.serving.serve import spec_json_fields

pytestmark = pytest.mark.usefixtures(one_torch_thread.__name__)

HELLO = [{"role": "user", "content": "Say hello."}]
SDK_HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("path", "request_fields"),
    [
        ("/v1/chat/completions", {"messages": HELLO}),
        ("/v1/completions", {"prompt": ["Once upon", "a time"], "n": 2, "temperature": 1}),
    ],
    ids=["chat", "completions"],
)
async def test_a_client_that_hangs_up_cancels_its_answer(
    pool: ModelPool,
    stream: bool,
    path: str,
    request_fields: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[Generation] = []
    start = pool.start

    def recording_start(name: str, prompt: Prompt, **sampling: Any) -> Generation:
        started.append(start(name, prompt, **sampling))
        return started[-1]

    monkeypatch.setattr(pool, "start", recording_start)
    app = build_app(ChatService(pool), api_key=None)
    fields = {"model": "base", "max_tokens": 400, "temperature": 0, "stream": stream}
    body = json.dumps({**fields, **request_fields}).encode()
    received: list[Message] = []

    async def receive() -> Message:
        if not received:
            received.append({"type": "http.request", "body": body, "more_body": False})
        else:
            # A streamed answer is under way before the hang-up; a whole one is still waited for.
            while stream and not started:
                await anyio.sleep(0.01)
            received.append({"type": "http.disconnect"})
        return received[-1]

    async def send(message: Message) -> None:
        pass

    # Holding the generation lock keeps the answer from starting, so only a hang-up can end it.
    with pool.lock:
        await app(_http_scope("POST", path, body), receive, send)
        # The second prompt of a legacy request is never started.
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


class _SlowTokens(LogitsProcessor):
    """Makes each token take a while and never the end of the answer, so an answer runs long."""

    def __init__(self, eos_token_ids: frozenset[int]) -> None:
        self.steps = 0
        self._eos = sorted(eos_token_ids)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.steps += 1
        time.sleep(0.05)
        scores[:, self._eos] = -float("inf")
        return scores


@pytest.fixture
def served(pool: ModelPool) -> Iterator[str]:
    """The app over ``pool`` on a loopback port in this process; yields its base URL."""
    config = uvicorn.Config(
        build_app(ChatService(pool), api_key=None),
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)


def _client(base_url: str, timeout: float = 30) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key="none", max_retries=0, timeout=timeout)


def test_a_request_that_times_out_or_is_closed_frees_the_server(
    pool: ModelPool, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = _SlowTokens(pool.eos_token_ids)
    run_generate = pool.run_generate

    def slowly(name: str, inputs: dict[str, torch.Tensor], **options: Any) -> Any:
        return run_generate(name, inputs, logits_processor=LogitsProcessorList([slow]), **options)

    monkeypatch.setattr(pool, "run_generate", slowly)
    # 400 tokens at 50 ms each would hold the server for 20 s, twice over.
    long_answer: dict[str, Any] = {"model": "base", "messages": SDK_HELLO, "max_tokens": 400}
    with pytest.raises(openai.APITimeoutError):
        _client(served, timeout=1).chat.completions.create(**long_answer, temperature=0)
    stream = _client(served).chat.completions.create(**long_answer, temperature=0, stream=True)
    with stream:
        for _, _chunk in zip(range(3), stream, strict=False):
            pass
    began = time.monotonic()
    second = _client(served).chat.completions.create(
        model="base", messages=SDK_HELLO, max_tokens=3, temperature=0
    )
    waited = time.monotonic() - began

    assert second.choices[0].message.content
    assert waited < 5
    steps = slow.steps
    time.sleep(0.3)
    assert slow.steps == steps, "the timed-out answer is still being generated"
    assert steps < 150


def test_stop_strings_end_the_answer_and_are_left_out(served: str) -> None:
    client = _client(served)
    whole = client.chat.completions.create(
        model="base", messages=SDK_HELLO, max_tokens=40, temperature=0
    )
    text = whole.choices[0].message.content
    assert text and len(text) > 12
    stop = text[len(text) // 2 :][:3]
    expected = text[: text.find(stop)]

    cut = client.chat.completions.create(
        model="base", messages=SDK_HELLO, max_tokens=40, temperature=0, stop=["never-said", stop]
    )
    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="base", messages=SDK_HELLO, max_tokens=40, temperature=0, stop=stop, stream=True
        )
        if chunk.choices
    )

    assert cut.choices[0].message.content == expected
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage is not None and whole.usage is not None
    assert cut.usage.completion_tokens < whole.usage.completion_tokens
    assert streamed == expected


def test_a_seed_makes_a_sampled_answer_repeatable(served: str) -> None:
    client = _client(served)

    def sampled(seed: int) -> str | None:
        answer = client.chat.completions.create(
            model="base", messages=SDK_HELLO, max_tokens=20, temperature=1.0, seed=seed
        )
        return answer.choices[0].message.content

    assert sampled(5) == sampled(5)
    assert sampled(5) != sampled(6)


@pytest.mark.parametrize(
    ("stops", "seen"),
    [
        (("\n",), [("one two", "one two"), ("\nthree", ""), ("four", "")]),
        (("END",), [("one E", "one "), ("N", ""), ("D two", "")]),
        (("END",), [("one E", "one "), ("x", "Ex")]),
        (("ab", "b"), [("xa", "x"), ("b", "")]),
    ],
)
def test_the_stop_scanner_holds_back_what_may_begin_a_stop(
    stops: tuple[str, ...], seen: list[tuple[str, str]]
) -> None:
    scanner = StopScanner(stops)
    assert [scanner.feed(piece) for piece, _ in seen] == [given for _, given in seen]
    assert scanner.flush() == ""
    assert scanner.stopped == (stops != ("END",) or seen[-1][0] != "x")


class Person(BaseModel):
    """A flat schema as langchain and the SDK send it (strict: every field required)."""

    name: str
    age: int
    role: Literal["admin", "user"]


def test_n_sampled_choices_differ_and_greedy_ones_repeat(served: str) -> None:
    client = _client(served)
    sampled = client.chat.completions.create(
        model="base", messages=SDK_HELLO, max_tokens=8, temperature=1.0, seed=3, n=3
    )
    greedy = client.chat.completions.create(
        model="base", messages=SDK_HELLO, max_tokens=8, temperature=0, n=2
    )
    one = client.chat.completions.create(
        model="base", messages=SDK_HELLO, max_tokens=8, temperature=0
    )

    assert [choice.index for choice in sampled.choices] == [0, 1, 2]
    assert len({choice.message.content for choice in sampled.choices}) == 3
    assert [choice.message.content for choice in greedy.choices] == [
        one.choices[0].message.content
    ] * 2
    assert greedy.usage is not None and one.usage is not None
    assert greedy.usage.completion_tokens == 2 * one.usage.completion_tokens
    assert greedy.usage.prompt_tokens == one.usage.prompt_tokens


def test_logprobs_name_every_token_of_the_answer(served: str) -> None:
    client = _client(served)
    answer = client.chat.completions.create(
        model="base",
        messages=SDK_HELLO,
        max_completion_tokens=6,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    [choice] = answer.choices
    assert choice.logprobs is not None and choice.logprobs.content
    tokens = choice.logprobs.content
    content = choice.message.content or ""

    assert choice.finish_reason == "length"
    assert len(tokens) == 6
    assert b"".join(bytes(token.bytes or []) for token in tokens) == content.encode()
    for token in tokens:
        alternatives = [top.logprob for top in token.top_logprobs]
        assert len(alternatives) == 3
        assert alternatives == sorted(alternatives, reverse=True)
        # Greedy decoding takes the likeliest token, so it is the first alternative.
        assert token.token == token.top_logprobs[0].token
        assert token.logprob == pytest.approx(alternatives[0])
        assert token.logprob < 0


def test_streamed_logprobs_stop_with_the_text(served: str) -> None:
    client = _client(served)
    whole = client.chat.completions.create(
        model="base", messages=SDK_HELLO, max_tokens=30, temperature=0, logprobs=True
    )
    text = whole.choices[0].message.content or ""
    stop = text[len(text) // 2 :][:3]
    streamed_text = ""
    streamed_tokens: list[str] = []
    for chunk in client.chat.completions.create(
        model="base",
        messages=SDK_HELLO,
        max_tokens=30,
        temperature=0,
        logprobs=True,
        stop=stop,
        stream=True,
    ):
        for choice in chunk.choices:
            streamed_text += choice.delta.content or ""
            if choice.logprobs and choice.logprobs.content:
                streamed_tokens += [token.token for token in choice.logprobs.content]

    assert whole.choices[0].logprobs is not None and whole.choices[0].logprobs.content
    all_tokens = [token.token for token in whole.choices[0].logprobs.content]
    assert streamed_text == text[: text.find(stop)]
    # The tokens that wrote the text up to the stop string, the one it begins in included.
    assert streamed_tokens == all_tokens[: len(streamed_tokens)]
    assert "".join(streamed_tokens).startswith(streamed_text)
    assert len("".join(streamed_tokens[:-1])) < len(streamed_text) or not streamed_text


@pytest.mark.parametrize("seed", range(3))
def test_json_answers_always_parse_when_sampled(served: str, seed: int) -> None:
    client = _client(served, timeout=60)
    objects = client.chat.completions.create(
        model="base",
        messages=SDK_HELLO,
        max_tokens=32,
        temperature=1.0,
        seed=seed,
        n=2,
        response_format={"type": "json_object"},
    )
    people = client.chat.completions.parse(
        model="base",
        messages=SDK_HELLO,
        max_completion_tokens=40,
        temperature=1.0,
        top_p=0.9,
        seed=seed,
        n=2,
        response_format=Person,
    )

    for choice in objects.choices:
        assert isinstance(json.loads(choice.message.content or ""), dict)
        assert choice.finish_reason == "stop"
    for parsed in people.choices:
        assert isinstance(parsed.message.parsed, Person)


def test_langchain_reads_structured_output_logprobs_and_usage(served: str) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        base_url=served + "/v1",
        api_key=SecretStr("none"),
        model="base",
        temperature=1.0,
        seed=5,
        max_retries=0,
        max_completion_tokens=48,
    )
    person = chat.with_structured_output(Person, method="json_schema").invoke("Who?")
    anything = chat.with_structured_output(method="json_mode").invoke("Answer in JSON.")
    scored = ChatOpenAI(
        base_url=served + "/v1",
        api_key=SecretStr("none"),
        model="base",
        temperature=0,
        max_retries=0,
        max_completion_tokens=5,
        logprobs=True,
        stream_usage=True,
    )
    reply = scored.invoke("Say hello.")
    streamed = None
    for chunk in scored.stream("Say hello."):
        streamed = chunk if streamed is None else streamed + chunk

    assert isinstance(person, Person)
    assert isinstance(anything, dict)
    assert len(reply.response_metadata["logprobs"]["content"]) == 5
    assert streamed is not None and streamed.content == reply.content
    assert streamed.usage_metadata is not None
    assert streamed.usage_metadata["output_tokens"] == 5


def test_completions_continue_score_and_echo_prompts(served: str) -> None:
    client = _client(served)
    prompts = ["Once upon a time", "The colour of the sky"]
    answer = client.completions.create(
        model="base", prompt=prompts, max_tokens=4, temperature=0, n=2, logprobs=2, echo=True
    )

    assert [choice.index for choice in answer.choices] == [0, 1, 2, 3]
    for choice in answer.choices:
        prompt = prompts[choice.index // 2]
        logprobs = choice.logprobs
        assert logprobs is not None and logprobs.tokens and logprobs.text_offset
        assert logprobs.token_logprobs is not None and logprobs.top_logprobs is not None
        assert choice.text.startswith(prompt)
        assert "".join(logprobs.tokens) == choice.text
        for token, offset in zip(logprobs.tokens, logprobs.text_offset, strict=True):
            assert choice.text[offset : offset + len(token)] == token
        # Nothing came before the first prompt token; each other lists itself among the best.
        assert logprobs.token_logprobs[0] is None
        assert all(
            top is not None and token in top and len(top) <= 3
            for token, top in zip(logprobs.tokens[1:], logprobs.top_logprobs[1:], strict=True)
        )
    assert answer.usage is not None and answer.usage.completion_tokens == 4 * 4

    # A harness scores a continuation by echoing it back with no new tokens.
    first = answer.choices[0]
    scored = client.completions.create(
        model="base", prompt=first.text, max_tokens=0, echo=True, logprobs=0
    )
    [again] = scored.choices
    assert again.text == first.text
    assert again.finish_reason == "length"
    assert again.logprobs is not None and first.logprobs is not None
    assert again.logprobs.token_logprobs == pytest.approx(first.logprobs.token_logprobs, abs=1e-4)


def test_completions_stream_and_stop_like_chat(served: str) -> None:
    from langchain_openai import OpenAI as LegacyOpenAI

    client = _client(served)
    whole = client.completions.create(
        model="base", prompt="Once upon a time", max_tokens=20, temperature=0
    )
    text = whole.choices[0].text
    stop = text[len(text) // 2 :][:3]
    streamed = "".join(
        chunk.choices[0].text
        for chunk in client.completions.create(
            model="base",
            prompt="Once upon a time",
            max_tokens=20,
            temperature=0,
            stop=[stop],
            stream=True,
            stream_options={"include_usage": True},
        )
        if chunk.choices
    )
    legacy = LegacyOpenAI(
        base_url=served + "/v1",
        api_key=SecretStr("none"),
        model="base",
        temperature=0,
        max_tokens=20,
        max_retries=0,
    )

    assert whole.choices[0].finish_reason == "length"
    assert streamed == text[: text.find(stop)]
    assert legacy.invoke("Once upon a time") == text


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"presence_penalty": 1.0}, "presence_penalty"),
        ({"n": 9}, "n"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"extra_body": {"guided_json": {}}}, "guided_json"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "A",
                        "schema": {
                            "type": "object",
                            "properties": {"a": {"type": "string", "format": "date"}},
                        },
                    },
                }
            },
            "response_format",
        ),
        ({"response_format": {"type": "json_object"}, "max_tokens": 1}, "max_tokens"),
    ],
)
def test_what_the_server_cannot_honour_is_refused_by_name(
    served: str, fields: dict[str, Any], param: str
) -> None:
    extra_body = fields.pop("extra_body", None)
    with pytest.raises(openai.BadRequestError) as refused:
        _client(served).chat.completions.create(
            model="base", messages=SDK_HELLO, extra_body=extra_body, **fields
        )

    assert refused.value.param == param
    assert param in refused.value.message


def test_completions_refuse_what_they_cannot_honour_by_name(served: str) -> None:
    client = _client(served)
    with pytest.raises(openai.BadRequestError) as suffix:
        client.completions.create(model="base", prompt="Once", suffix="end")
    with pytest.raises(openai.BadRequestError) as unknown_token:
        client.completions.create(model="base", prompt=[10**9])

    assert suffix.value.param == "suffix"
    assert unknown_token.value.param == "prompt"
    assert "1000000000" in unknown_token.value.message


def test_a_json_task_writes_its_own_fields_for_json_object(pool: ModelPool) -> None:
    task = ChatService(pool, task_shape=task_object(["name", "order_id"]))
    client = TestClient(build_app(task, api_key=None))
    for seed in range(3):
        answer = client.post(
            "/v1/chat/completions",
            json={
                "model": "base",
                "messages": HELLO,
                "max_tokens": 48,
                "temperature": 1.0,
                "seed": seed,
                "response_format": {"type": "json_object"},
            },
        )
        assert answer.status_code == 200, answer.text
        content = answer.json()["choices"][0]["message"]["content"]
        # Exactly the spec's fields (in the order the model chose), whatever else it would write.
        assert sorted(json.loads(content)) == ["name", "order_id"], content


def test_the_spec_names_json_fields_only_for_a_json_task() -> None:
    assert spec_json_fields({"output": {"kind": "json", "json_fields": ["a", 2, "b"]}}) == [
        "a",
        "b",
    ]
    assert spec_json_fields({"output": {"kind": "labels", "json_fields": ["a"]}}) == []
    assert spec_json_fields({}) == []
