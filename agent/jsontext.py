"""Reading JSON that people and models write: code fences, trailing commas, prose around it."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


class JsonTextError(ValueError):
    """Text that should hold JSON but does not; the message says why, in a few words."""


def strip_code_fences(text: str) -> str:
    """The contents of the Markdown code fences in ``text``, or ``text`` when it has none."""
    blocks = _FENCE.findall(text)
    if not blocks:
        return text
    return "\n".join(block.strip("\n") for block in blocks)


def loads_lenient(text: str) -> Any:
    """Decode one JSON value, forgiving trailing commas; raise JsonTextError saying why not."""
    stripped = text.strip()
    if not stripped:
        raise JsonTextError("empty")
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as first_error:
        repaired = _TRAILING_COMMA.sub(r"\1", stripped).rstrip().rstrip(",")
        if repaired != stripped:
            try:
                return json.loads(repaired)
            except json.JSONDecodeError:
                pass
        raise JsonTextError(describe_json_error(first_error)) from first_error
    except RecursionError as error:
        raise JsonTextError("nested too deeply") from error


def find_json_object(text: str) -> dict[str, Any]:
    """The JSON object in ``text`` (fenced or with prose around it); raise JsonTextError why not."""
    body = strip_code_fences(text).strip()
    start, end = body.find("{"), body.rfind("}")
    if start < 0:
        raise JsonTextError("no JSON object in it")
    if end < start:
        raise JsonTextError("the JSON object is not closed")
    value = loads_lenient(body[start : end + 1])
    if not isinstance(value, dict):
        raise JsonTextError("not a JSON object")
    return value


def describe_json_error(error: json.JSONDecodeError) -> str:
    """A short reason for a decoding error, with its column."""
    joiner = " " if error.msg.endswith(" at") else " at "
    return f"{error.msg}{joiner}line {error.lineno} column {error.colno}"
