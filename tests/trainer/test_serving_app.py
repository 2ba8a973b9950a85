"""The model server's ASGI app in this process: hang-ups and timeouts stop answers, stop strings
and seeds, the system prompt goes in."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import openai
import pytest
import torch
import uvicorn
from openai.types.chat import ChatCompletionMessageParam
from starlette.testclient import TestClient
from starlette.types import Message, Scope
from transformers import LogitsProcessor, LogitsProcessorList

from trainer.control.snapshot import with_system_prompt
from trainer.serving.app import ChatService, build_app
from trainer.serving.inference import Generation, ModelPool, Prompt, StopScanner

HELLO = [{"role": "user", "content": "Say hello."}]
SDK_HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


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
    body = json.dumps(
        {"model": "base", "messages": HELLO, "max_tokens": 400, "temperature": 0, "stream": stream}
    ).encode()
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
