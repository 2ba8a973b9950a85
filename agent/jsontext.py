"""Reading JSON that people and models write, on top of langchain's ``parse_json_markdown``.

Langchain's reader takes one value, bare or in a code fence; this adds what it leaves out:
trailing commas forgiven, a reason in a few words when the text is not JSON, the fenced blocks
of several JSONL lines, and an object with prose around it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_core.utils.json import parse_json_markdown

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
    """Decode one JSON value, bare or fenced, forgiving trailing commas; JsonTextError why not."""
    if not text.strip():
        raise JsonTextError("empty")
    try:
        return parse_json_markdown(text, parser=_loads_forgiving_commas)
    except json.JSONDecodeError as error:
        raise JsonTextError(describe_json_error(error)) from error
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


def _loads_forgiving_commas(text: str) -> Any:
    """``json.loads``, retried without trailing commas; the first error is the one raised."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        repaired = _TRAILING_COMMA.sub(r"\1", text).rstrip().rstrip(",")
        if repaired == text:
            raise
        try:
            return json.loads(repaired)
        except json.JSONDecodeError:
            pass
        raise
