"""The chat request the model server accepts, and the OpenAI-style refusal of every other."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trainer.serving.schemas import DEFAULT_MAX_TOKENS, RequestError, parse_chat_request

HELLO = [{"role": "user", "content": "Say hello."}]


def _body(**fields: Any) -> bytes:
    return json.dumps({"model": "base", "messages": HELLO, **fields}).encode()


def test_a_request_takes_openais_defaults_and_names() -> None:
    parts = [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]
    chat = parse_chat_request(
        _body(
            messages=[{"role": "developer", "content": parts}, *HELLO],
            max_tokens=7,
            max_completion_tokens=9,
            temperature=None,
            stop=[],
            stream_options={"include_usage": True},
            user="ignored",
        )
    )

    assert chat.template_messages() == [{"role": "system", "content": "Be brief."}, *HELLO]
    assert chat.max_tokens == 9
    assert chat.temperature == 1.0
    assert chat.top_p is None
    assert not chat.stream
    assert chat.include_usage
    assert parse_chat_request(_body(max_tokens=None)).max_tokens == DEFAULT_MAX_TOKENS
    assert not parse_chat_request(_body(stream_options="yes")).include_usage


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (b"{not json", None, "The request body is not valid JSON: "),
        (b"[1, 2]", None, "The request body must be a JSON object."),
        (_body(model=""), "model", "'model' is required and must be a string."),
        (_body(messages=[]), "messages", "'messages' must be a non-empty list."),
        (_body(messages=[HELLO[0], 5]), "messages[1]", "messages[1] must be an object."),
        (
            _body(messages=[{"role": "tool", "content": "x"}]),
            "messages[0]",
            "messages[0].role must be one of system, user, assistant.",
        ),
        (
            _body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
            "messages[0]",
            "messages[0].content must be text.",
        ),
        (_body(max_tokens=True), "max_tokens", "'max_tokens' must be a positive integer."),
        (_body(max_completion_tokens=0), "max_tokens", "'max_tokens' must be a positive integer."),
        (_body(temperature=2.5), "temperature", "'temperature' must be a number from 0 to 2."),
        (_body(top_p="all"), "top_p", "'top_p' must be a number from 0 to 1."),
        (_body(stream=None), "stream", "'stream' must be true or false."),
        (_body(n=2), "n", "Only n=1 is supported."),
        (_body(model=3, temperature=9), "model", "'model' is required and must be a string."),
    ],
)
def test_a_refused_request_names_its_first_bad_field(
    body: bytes, param: str | None, message: str
) -> None:
    with pytest.raises(RequestError) as refused:
        parse_chat_request(body)

    assert refused.value.status == 400
    assert refused.value.param == param
    assert refused.value.message.startswith(message)
    assert refused.value.body()["error"] == {
        "message": refused.value.message,
        "type": "invalid_request_error",
        "param": param,
        "code": None,
    }
