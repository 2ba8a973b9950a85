"""The model server's ASGI app in this process: hang-ups stop answers, the system prompt goes in."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from starlette.testclient import TestClient
from starlette.types import Message, Scope

from trainer.control.snapshot import with_system_prompt
from trainer.serving.app import ChatService, build_app
from trainer.serving.inference import Generation, ModelPool, Prompt

HELLO = [{"role": "user", "content": "Say hello."}]


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
