"""Constrained JSON decoding: the schema subset it honours, the prefix automaton, and the logits
processor that keeps any model's answer parsing, over the real tokenizer with random logits."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tests.trainer.one_thread import one_torch_thread
from trainer.serving.json_constraint import JsonConstraint, JsonVocabulary
from trainer.serving.json_prefix import (
    MAX_WHITESPACE,
    advance,
    is_complete,
    shortest_completion,
    start_state,
)
from trainer.serving.json_schema import ANY_OBJECT, SchemaError, Shape, compile_schema
from trainer.serving.vocabulary import TokenTexts

pytestmark = pytest.mark.usefixtures(one_torch_thread.__name__)

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Who."},
        "age": {"type": "integer"},
        "height": {"type": ["number", "null"]},
        "role": {"enum": ["admin", "user", 7]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "active": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
        "address": {"$ref": "#/$defs/Address"},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
    "$defs": {
        "Address": {
            "type": "object",
            "properties": {"city": {"const": "Paris"}, "zip": {"type": "string"}},
            "required": ["city"],
        }
    },
}

PERSON_KEYS = set(PERSON["properties"])


def _fits_person(value: Any) -> bool:
    """Whether a parsed value holds to PERSON (checked by hand: no validator is installed)."""
    if not isinstance(value, dict) or not {"name", "age", "role"} <= value.keys():
        return False
    if not value.keys() <= PERSON_KEYS:
        return False
    checks = [
        isinstance(value["name"], str),
        isinstance(value["age"], int) and not isinstance(value["age"], bool),
        value["role"] in ("admin", "user", 7),
        value.get("height") is None or isinstance(value["height"], int | float),
        all(isinstance(tag, str) for tag in value.get("tags", [])),
        value.get("active") in (None, True, False),
    ]
    address = value.get("address", {"city": "Paris"})
    checks.append(isinstance(address, dict) and address.get("city") == "Paris")
    checks.append(address.keys() <= {"city", "zip"})
    return all(checks)


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        ({"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}}, "'pattern'"),
        ({"type": "object", "properties": {"a": {"type": "integer", "minimum": 1}}}, "'minimum'"),
        ({"type": "object", "allOf": []}, "'allOf'"),
        ({"type": "array"}, "the root must be an object"),
        ({"type": "object", "required": ["a"]}, "'properties' is missing"),
        ({"type": "object", "properties": {}, "required": ["a"]}, "names 'a'"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/B"}}}, "'#/$defs/B'"),
        (
            {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/A"}},
                "$defs": {"A": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}}},
            },
            "refers to itself",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"anyOf": [{"type": "string"}, {"enum": ["x"]}]}},
            },
            "can both start with '\"'",
        ),
        ({"type": "object", "properties": {"a": {"enum": [[1]]}}}, "values must be strings"),
        ({"type": "object", "properties": {"a": {"type": "date"}}}, "must be one of string"),
    ],
)
def test_what_the_decoder_cannot_honour_is_refused_by_name(
    schema: dict[str, Any], named: str
) -> None:
    with pytest.raises(SchemaError) as refused:
        compile_schema(schema, "response_format.json_schema.schema")

    assert named in str(refused.value)
    assert str(refused.value).startswith("response_format.json_schema.schema")


def test_a_schema_compiles_to_its_shape() -> None:
    shape = compile_schema(PERSON, "schema")

    assert shape.required == {"name", "age", "role"}
    assert shape.property_shape("role").literals == ('"admin"', '"user"', "7")
    assert shape.property_shape("height").kinds == {"number", "null"}
    assert shape.property_shape("address").property_shape("city").literals == ('"Paris"',)
    # {"name":"","age":0,"role":7}
    assert shape.shortest == len('{"name":"","age":0,"role":7}')
    assert compile_schema(dict(PERSON), "schema") is shape, "a schema sent again is kept"


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ('{"name": "a\\u00e9\\n", "age": -0, "role": 7}', True),
        ('{"name":"a","age":12,"role":"user","tags":["x", "y"],"height":1.5e-3}', True),
        ('{"name":"a","age":1.5,"role":7}', False),
        ('{"name":"a","age":01,"role":7}', False),
        ('{"name":"a","age":1,"role":"other"}', False),
        ('{"name":"a","age":1,"role":7,"name":"b"}', False),
        ('{"nick":"a"}', False),
        ('{"name":"a\x01"}', False),
        ('{"name":"\\x"}', False),
        (' {"name":"a","age":1,"role":7}', False),
        ('{"name":"a","age":1,"role":7,}', False),
        ('{"name":"a","age":1', None),
        ("{" + " " * (MAX_WHITESPACE + 1), False),
    ],
)
def test_the_prefix_automaton_reads_json_of_the_shape(text: str, valid: bool | None) -> None:
    shape = compile_schema(PERSON, "schema")
    state = advance(start_state(shape), text)

    if valid is None:
        # A prefix: the required key left is not there yet, so the object cannot end.
        assert state is not None and not is_complete(state)
        assert advance(state, "}") is None
    else:
        assert (state is not None and is_complete(state)) == valid


@pytest.mark.parametrize(
    "shape", [compile_schema(PERSON, "schema"), ANY_OBJECT], ids=["person", "object"]
)
def test_a_random_walk_within_its_budget_always_ends_in_json_of_the_shape(shape: Shape) -> None:
    alphabet = list('{}[],:"\\ \n0123456789-+.eE') + [chr(c) for c in range(65, 123)] + ["é"]
    generator = random.Random(7)
    for _ in range(200):
        budget = generator.randint(shape.shortest, 80)
        state = start_state(shape)
        text = ""
        while not is_complete(state):
            options = [
                (character, following)
                for character in alphabet
                if (following := advance(state, character)) is not None
                and shortest_completion(following) <= budget - len(text) - 1
            ]
            character, state = generator.choice(options)
            text += character
        value = json.loads(text)
        assert len(text) <= budget
        assert shape is ANY_OBJECT or _fits_person(value), text


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> PreTrainedTokenizerBase:
    """The real SmolLM2 tokenizer (no model)."""
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def vocabulary(tokenizer: PreTrainedTokenizerBase) -> JsonVocabulary:
    return JsonVocabulary(TokenTexts(tokenizer), len(tokenizer))


def test_token_bytes_spell_the_text_exactly(tokenizer: PreTrainedTokenizerBase) -> None:
    texts = TokenTexts(tokenizer)
    text = "Café ✓ naïve 🙂 “quotes”\n\tend"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]

    assert b"".join(texts.bytes_of(token) for token in ids) == text.encode()
    assert texts.decode([*ids, tokenizer.eos_token_id]) == text
    assert texts.bytes_of(tokenizer.eos_token_id) == b""
    partial = [token for token in ids if texts.whole_text(token) is None]
    assert partial, "the emoji is split over tokens that each hold part of it"


def _sample_answers(
    vocabulary: JsonVocabulary, shape: Shape, *, seed: int, max_new_tokens: int, rows: int = 2
) -> list[str]:
    """Answers of ``rows`` rows sampled from random logits, as generate would with the
    constraint; the random logits favour whitespace and long strings as a tiny model does."""
    eos = 2
    generator = torch.Generator().manual_seed(seed)
    constraint = JsonConstraint(
        vocabulary,
        shape,
        rows=rows,
        prompt_tokens=1,
        max_new_tokens=max_new_tokens,
        eos_token_ids=frozenset({eos}),
    )
    ids = torch.zeros((rows, 1), dtype=torch.long)
    finished = torch.zeros(rows, dtype=torch.bool)
    for _ in range(max_new_tokens):
        scores = torch.randn(rows, vocabulary.logits_size, generator=generator) * 4
        masked = constraint(ids, scores)  # type: ignore[arg-type]
        chosen = torch.multinomial(torch.softmax(masked, dim=-1), 1, generator=generator)[:, 0]
        chosen[finished] = eos
        finished |= chosen == eos
        ids = torch.cat([ids, chosen[:, None]], dim=1)
        if finished.all():
            break
    texts = vocabulary.texts
    return [texts.decode(row[1:].tolist()) for row in ids]


@pytest.mark.parametrize("max_new_tokens", [28, 64])
def test_sampled_answers_always_parse_whatever_the_logits_want(
    vocabulary: JsonVocabulary, max_new_tokens: int
) -> None:
    person = compile_schema(PERSON, "schema")
    for seed in range(4):
        for answer in _sample_answers(vocabulary, person, seed=seed, max_new_tokens=max_new_tokens):
            assert _fits_person(json.loads(answer)), answer
        for answer in _sample_answers(
            vocabulary, ANY_OBJECT, seed=seed, max_new_tokens=max_new_tokens
        ):
            assert isinstance(json.loads(answer), dict), answer


def test_the_vocabulary_spells_json_and_names_what_it_cannot(
    vocabulary: JsonVocabulary,
) -> None:
    assert vocabulary.missing_characters == ""
    assert vocabulary.unspelled(compile_schema(PERSON, "schema")) is None
    odd_key = {"type": "object", "properties": {"\u0d9e": {"type": "string"}}}
    assert vocabulary.unspelled(compile_schema(odd_key, "schema")) == '"\u0d9e"'
