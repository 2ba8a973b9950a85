"""The chat request the model server accepts, and the OpenAI-style refusal of every other."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trainer.serving.completion_schemas import (
    DEFAULT_COMPLETION_TOKENS,
    parse_completion_request,
)
from trainer.serving.json_schema import ANY_OBJECT
from trainer.serving.schemas import (
    DEFAULT_MAX_TOKENS,
    IGNORED_FIELDS,
    RequestError,
    parse_chat_request,
)

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
            stream_options={"include_usage": True, "include_obfuscation": False},
            user="ignored",
            n=None,
            frequency_penalty=0,
            presence_penalty=0.0,
            logit_bias={},
            tools=[],
            tool_choice="none",
            parallel_tool_calls=True,
            service_tier="auto",
            store=False,
        )
    )

    assert chat.template_messages() == [{"role": "system", "content": "Be brief."}, *HELLO]
    assert chat.max_tokens == 9
    assert chat.temperature == 1.0
    assert chat.top_p is None
    assert not chat.stream
    assert chat.include_usage
    assert chat.n == 1
    assert chat.alternatives is None
    assert chat.shape is None
    assert parse_chat_request(_body(max_tokens=None)).max_tokens == DEFAULT_MAX_TOKENS
    assert not parse_chat_request(_body(stream_options=None)).include_usage


def test_a_request_asks_for_choices_logprobs_and_json() -> None:
    chat = parse_chat_request(_body(n=8, logprobs=True, top_logprobs=20))
    assert (chat.n, chat.alternatives) == (8, 20)
    assert parse_chat_request(_body(logprobs=True)).alternatives == 0
    assert parse_chat_request(_body(response_format={"type": "json_object"})).shape is ANY_OBJECT
    assert parse_chat_request(_body(response_format={"type": "text"})).shape is None
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    json_schema = {"type": "json_schema", "json_schema": {"name": "A", "schema": schema}}
    shape = parse_chat_request(_body(response_format=json_schema)).shape
    assert shape is not None
    assert shape.required == {"a"}


def test_harmless_fields_are_named_and_only_those() -> None:
    assert {"user", "metadata", "store", "service_tier", "safety_identifier"} <= IGNORED_FIELDS
    assert "tools" not in IGNORED_FIELDS


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
        (_body(n=9), "n", "'n' must be an integer from 1 to 8."),
        (_body(n=0), "n", "'n' must be an integer from 1 to 8."),
        (_body(stop=["a"] * 5), "stop", "'stop' must be a string or a list of up to 4"),
        (_body(logprobs=1), "logprobs", "'logprobs' must be true or false."),
        (_body(top_logprobs=3), "top_logprobs", "'top_logprobs' must be an integer from 0 to 20"),
        (
            _body(logprobs=True, top_logprobs=21),
            "top_logprobs",
            "'top_logprobs' must be an integer from 0 to 20",
        ),
        (
            _body(stream_options={"chunk": 1}),
            "stream_options",
            "'stream_options.chunk' is not supported",
        ),
        (
            _body(stream_options={"include_usage": 1}),
            "stream_options",
            "'stream_options' may hold only",
        ),
        (_body(tools=[{"type": "function"}]), "tools", "'tools' is not supported by this server"),
        (_body(frequency_penalty=0.5), "frequency_penalty", "'frequency_penalty' is not supported"),
        (_body(logit_bias={"50256": -100}), "logit_bias", "'logit_bias' is not supported"),
        (_body(tool_choice="auto"), "tool_choice", "'tool_choice' is not supported"),
        (_body(audio={"voice": "x"}), "audio", "'audio' is not supported by this server."),
        (_body(reasoning_effort="low"), "reasoning_effort", "'reasoning_effort' is not supported"),
        (_body(shape="free"), "shape", "'shape' is not supported by this server."),
        (_body(response_format="json"), "response_format", "'response_format' must be"),
        (
            _body(response_format={"type": "json_object", "schema": {}}),
            "response_format",
            "'response_format' must be",
        ),
        (
            _body(response_format={"type": "json_schema"}),
            "response_format",
            "'response_format.json_schema' is missing",
        ),
        (
            _body(
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "A", "schema": {"type": "object", "minProperties": 1}},
                }
            ),
            "response_format",
            "response_format.json_schema.schema: 'minProperties' is not supported",
        ),
        (
            _body(response_format={"type": "json_object"}, stop="}"),
            "stop",
            "'stop' cannot be combined with a JSON response_format",
        ),
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


def _completion(**fields: Any) -> bytes:
    return json.dumps({"model": "base", "prompt": "Once", **fields}).encode()


def test_a_completion_request_takes_text_token_ids_and_harness_fields() -> None:
    request = parse_completion_request(_completion(user="x", best_of=1))
    assert request.prompts == ["Once"]
    assert (request.max_tokens, request.logprobs, request.echo) == (
        DEFAULT_COMPLETION_TOKENS,
        None,
        False,
    )
    assert parse_completion_request(_completion(prompt=["a", "b"])).prompts == ["a", "b"]
    assert parse_completion_request(_completion(prompt=[1, 2])).prompts == [[1, 2]]
    assert parse_completion_request(_completion(prompt=[[1], [2, 3]])).prompts == [[1], [2, 3]]
    scoring = parse_completion_request(_completion(max_tokens=0, echo=True, logprobs=1))
    assert (scoring.max_tokens, scoring.echo, scoring.logprobs) == (0, True, 1)


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (_completion(prompt=[]), "prompt", "'prompt' must be a string, a list of up to 32"),
        (_completion(prompt=""), "prompt", "'prompt' must be a string"),
        (_completion(prompt=["a", 1]), "prompt", "'prompt' must be a string"),
        (_completion(prompt=["a"] * 33), "prompt", "'prompt' must be a string"),
        (_completion(max_tokens=-1), "max_tokens", "'max_tokens' must be an integer of 0 or more."),
        (_completion(logprobs=True), "logprobs", "'logprobs' must be an integer from 0 to 20."),
        (_completion(logprobs=21), "logprobs", "'logprobs' must be an integer from 0 to 20."),
        (_completion(best_of=3), "best_of", "'best_of' is not supported by this server"),
        (_completion(suffix="end"), "suffix", "'suffix' is not supported by this server"),
        (_completion(messages=HELLO), "messages", "'messages' is not supported by this server."),
        (
            _completion(response_format={"type": "json_object"}),
            "response_format",
            "'response_format' is not supported",
        ),
    ],
)
def test_a_refused_completion_request_names_its_field(
    body: bytes, param: str, message: str
) -> None:
    with pytest.raises(RequestError) as refused:
        parse_completion_request(body)

    assert refused.value.status == 400
    assert refused.value.param == param
    assert refused.value.message.startswith(message)
