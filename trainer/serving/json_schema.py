"""The part of JSON Schema that constrained decoding honours, compiled into the shapes it writes.

A request's ``json_schema`` becomes a tree of ``Shape``; anything the decoder could not keep is
refused with a ``SchemaError`` naming where it is and the keyword, never dropped.

Honoured: ``type`` (a name or a list), ``properties``, ``required``, ``additionalProperties``,
``items``, ``enum``, ``const``, ``anyOf`` / ``oneOf`` (of alternatives that start differently),
and ``$ref`` to the root's ``$defs`` / ``definitions`` (not recursive). Annotations
(``title``, ``description``, ``default``, ``examples`` ...) are read and ignored. The root must
be an object. An object with ``properties`` is written with those keys only, each at most once
and the required ones always (so ``additionalProperties`` of any value holds); one without is
any object. Enum and const values are scalars, written in their compact JSON form.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KINDS = ("string", "integer", "number", "boolean", "null", "object", "array")
"""JSON Schema's type names, all of which the decoder can write."""

HONOURED_KEYWORDS = (
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "$ref",
    "$defs",
    "definitions",
)
"""The keywords that shape what is written, as the refusal of any other lists them."""

IGNORED_ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$schema",
        "$id",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "strict",
    }
)
"""Keywords that describe a value without constraining it."""

_SHORTEST_KIND = {"string": 2, "integer": 1, "number": 1, "boolean": 4, "null": 4, "array": 2}
"""Characters of the shortest value of each kind: ``""``, ``0``, ``true``, ``null``, ``[]``."""

_FIRST_CHARACTERS = {
    "string": '"',
    "integer": "-0123456789",
    "number": "-0123456789",
    "boolean": "tf",
    "null": "n",
    "object": "{",
    "array": "[",
}
"""The characters a value of each kind may begin with."""


class SchemaError(ValueError):
    """A schema the decoder cannot follow; ``where`` names the part of it at fault."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where


@dataclass(frozen=True, eq=False)
class Shape:
    """What one JSON value may be: one of ``literals``, or a value of one of ``kinds``.

    Compared by identity: a compiled schema is one tree, and decoder states hold its nodes.
    """

    kinds: frozenset[str]
    """Types a value may have (``number`` includes integers)."""
    literals: tuple[str, ...] = ()
    """Exact JSON texts a value may also be (enum and const values)."""
    properties: Mapping[str, Shape] | None = None
    """An object's keys and their values' shapes; None lets an object have any keys."""
    required: frozenset[str] = frozenset()
    """Keys an object must have."""
    items: Shape | None = None
    """The shape of an array's items; None lets them be anything."""
    key_texts: Mapping[str, str] = field(default_factory=dict)
    """Each property's key as JSON text (with its quotes), mapped to the key."""
    shortest: int = 0
    """Characters of the shortest value this shape allows."""

    def property_shape(self, key: str | None) -> Shape:
        """The shape of the value under ``key`` (any value in an object of any keys)."""
        if key is None or self.properties is None:
            return ANY_VALUE
        return self.properties[key]

    def key_cost(self, key: str) -> int:
        """Characters of ``"key":`` and the shortest value it may take."""
        return len(json_text(key)) + 1 + self.property_shape(key).shortest


def json_text(value: object) -> str:
    """A scalar or key as the decoder writes it: compact JSON, non-ASCII left as it is."""
    return json.dumps(value, ensure_ascii=False)


def make_shape(
    kinds: frozenset[str],
    *,
    literals: tuple[str, ...] = (),
    properties: Mapping[str, Shape] | None = None,
    required: frozenset[str] = frozenset(),
    items: Shape | None = None,
) -> Shape:
    """A shape with its key texts and shortest length worked out."""
    key_texts = {json_text(key): key for key in properties or {}}
    lengths = [len(text) for text in literals]
    for kind in kinds:
        if kind == "object":
            costs = [len(json_text(key)) + 1 + (properties or {})[key].shortest for key in required]
            lengths.append(2 + sum(costs) + max(0, len(costs) - 1))
        else:
            lengths.append(_SHORTEST_KIND[kind])
    return Shape(
        kinds=kinds,
        literals=literals,
        properties=properties,
        required=required,
        items=items,
        key_texts=key_texts,
        shortest=min(lengths),
    )


ANY_VALUE = make_shape(frozenset(KINDS))
"""Any JSON value."""

ANY_OBJECT = make_shape(frozenset({"object"}))
"""Any JSON object: what ``response_format`` ``json_object`` asks for."""


def compile_schema(schema: object, where: str) -> Shape:
    """The shape a JSON Schema allows; raises SchemaError for what the decoder cannot honour.

    ``where`` names the schema in messages (e.g. ``response_format.json_schema.schema``).
    Compiled schemas are kept, so a schema sent again reuses the decoder's work on it.
    """
    try:
        canonical = json.dumps(schema, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise SchemaError(where, "must be a JSON object") from error
    return _compile_canonical(canonical, where)


@functools.lru_cache(maxsize=32)
def _compile_canonical(canonical: str, where: str) -> Shape:
    schema = json.loads(canonical)
    if not isinstance(schema, dict):
        raise SchemaError(where, "must be a JSON object")
    definitions: dict[str, tuple[Any, str]] = {}
    for name in ("$defs", "definitions"):
        found = schema.get(name, {})
        if not isinstance(found, dict):
            raise SchemaError(f"{where}.{name}", "must be an object of schemas")
        for key, value in found.items():
            definitions[f"#/{name}/{key}"] = (value, f"{where}.{name}.{key}")
    shape = _Compiler(definitions).shape(schema, where, ())
    if shape.kinds != frozenset({"object"}) or shape.literals:
        raise SchemaError(where, "the root must be an object ({'type': 'object', ...})")
    return shape


@dataclass
class _Compiler:
    """Turns schema objects into shapes, following ``$ref`` into the root's definitions."""

    definitions: dict[str, tuple[Any, str]]
    """Each ``$ref`` target: its schema and where it is."""

    def shape(self, schema: object, where: str, following: tuple[str, ...]) -> Shape:
        if schema is True or schema == {}:
            return ANY_VALUE
        if not isinstance(schema, dict):
            raise SchemaError(where, "must be a schema object")
        unknown = [
            key for key in schema if key not in HONOURED_KEYWORDS and key not in IGNORED_ANNOTATIONS
        ]
        if unknown:
            raise SchemaError(
                where,
                f"{unknown[0]!r} is not supported; constrained decoding honours "
                f"{', '.join(HONOURED_KEYWORDS)} (annotations such as title are ignored)",
            )
        if "$ref" in schema:
            return self._reference(schema, where, following)
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                return self._alternatives(schema, keyword, where, following)
        if "enum" in schema or "const" in schema:
            return self._literals(schema, where)
        kinds = self._kinds(schema, where)
        properties = None
        required: frozenset[str] = frozenset()
        if "object" in kinds:
            properties, required = self._object(schema, where, following)
        items = None
        if "array" in kinds and "items" in schema:
            items = self.shape(schema["items"], f"{where}.items", following)
        if "number" in kinds:
            kinds = kinds - {"integer"}
        return make_shape(kinds, properties=properties, required=required, items=items)

    def _reference(self, schema: dict[str, Any], where: str, following: tuple[str, ...]) -> Shape:
        reference = schema["$ref"]
        if len(schema.keys() - IGNORED_ANNOTATIONS) > 1:
            raise SchemaError(where, "'$ref' must stand alone beside annotations")
        if not isinstance(reference, str) or reference not in self.definitions:
            raise SchemaError(
                f"{where}.$ref", f"{reference!r} is not one of the root's $defs / definitions"
            )
        if reference in following:
            raise SchemaError(f"{where}.$ref", f"{reference} refers to itself (recursion)")
        target, target_where = self.definitions[reference]
        return self.shape(target, target_where, (*following, reference))

    def _alternatives(
        self, schema: dict[str, Any], keyword: str, where: str, following: tuple[str, ...]
    ) -> Shape:
        branches = schema[keyword]
        if not isinstance(branches, list) or not branches:
            raise SchemaError(f"{where}.{keyword}", "must be a non-empty list of schemas")
        if len(schema.keys() - IGNORED_ANNOTATIONS) > 1:
            raise SchemaError(where, f"{keyword!r} must stand alone beside annotations")
        shapes = [
            self.shape(branch, f"{where}.{keyword}[{index}]", following)
            for index, branch in enumerate(branches)
        ]
        return _union(shapes, f"{where}.{keyword}")

    def _literals(self, schema: dict[str, Any], where: str) -> Shape:
        if "enum" in schema and "const" in schema:
            raise SchemaError(where, "give 'enum' or 'const', not both")
        keyword = "enum" if "enum" in schema else "const"
        values = schema["enum"] if keyword == "enum" else [schema["const"]]
        if not isinstance(values, list) or not values:
            raise SchemaError(f"{where}.enum", "must be a non-empty list")
        kinds = self._kinds(schema, where) if "type" in schema else frozenset(KINDS)
        texts: list[str] = []
        for value in values:
            kind = _kind_of(value)
            if kind is None:
                raise SchemaError(
                    f"{where}.{keyword}",
                    f"{value!r}: values must be strings, numbers, booleans or null",
                )
            allowed = kind in kinds or (kind == "integer" and "number" in kinds)
            if allowed and json_text(value) not in texts:
                texts.append(json_text(value))
        if not texts:
            raise SchemaError(f"{where}.{keyword}", "no value has the schema's 'type'")
        return make_shape(frozenset(), literals=tuple(texts))

    def _kinds(self, schema: dict[str, Any], where: str) -> frozenset[str]:
        declared = schema.get("type")
        if declared is None:
            inferred = {"object"} if "properties" in schema else set()
            inferred |= {"array"} if "items" in schema else set()
            return frozenset(inferred) or frozenset(KINDS)
        names = declared if isinstance(declared, list) else [declared]
        if not names or not all(isinstance(name, str) and name in KINDS for name in names):
            raise SchemaError(
                f"{where}.type", f"must be one of {', '.join(KINDS)}, or a list of them"
            )
        return frozenset(names)

    def _object(
        self, schema: dict[str, Any], where: str, following: tuple[str, ...]
    ) -> tuple[dict[str, Shape] | None, frozenset[str]]:
        declared = schema.get("properties")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(key, str) for key in required):
            raise SchemaError(f"{where}.required", "must be a list of property names")
        if declared is None:
            if required:
                raise SchemaError(f"{where}.required", "names keys but 'properties' is missing")
            closed = schema.get("additionalProperties") is False
            return ({} if closed else None), frozenset()
        if not isinstance(declared, dict):
            raise SchemaError(f"{where}.properties", "must be an object of schemas")
        properties = {
            key: self.shape(value, f"{where}.properties.{key}", following)
            for key, value in declared.items()
        }
        missing = [key for key in required if key not in properties]
        if missing:
            raise SchemaError(
                f"{where}.required", f"names {missing[0]!r}, which 'properties' lacks"
            )
        return properties, frozenset(required)


def _kind_of(value: object) -> str | None:
    """The JSON type of a scalar, None for an object or array."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _union(shapes: list[Shape], where: str) -> Shape:
    """One shape for alternatives that each start with characters of their own."""
    kinds: set[str] = set()
    literals: list[str] = []
    starts: dict[str, int] = {}
    objects = [shape for shape in shapes if "object" in shape.kinds]
    arrays = [shape for shape in shapes if "array" in shape.kinds]
    for index, shape in enumerate(shapes):
        firsts = {text[0] for text in shape.literals}
        firsts |= {first for kind in shape.kinds for first in _FIRST_CHARACTERS[kind]}
        for first in firsts:
            if starts.setdefault(first, index) != index:
                raise SchemaError(
                    where,
                    f"alternatives {starts[first]} and {index} can both start with {first!r}; "
                    "alternatives must differ in type",
                )
        kinds |= shape.kinds
        literals += [text for text in shape.literals if text not in literals]
    return make_shape(
        frozenset(kinds),
        literals=tuple(literals),
        properties=objects[0].properties if objects else None,
        required=objects[0].required if objects else frozenset(),
        items=arrays[0].items if arrays else None,
    )


def task_object(fields: Sequence[str]) -> Shape:
    """An object with exactly ``fields``, each any value: a JSON task's answer, the shape a
    project's server writes for ``json_object``."""
    schema = {
        "type": "object",
        "properties": {name: {} for name in fields},
        "required": list(fields),
        "additionalProperties": False,
    }
    return compile_schema(schema, "the task spec's JSON fields")
