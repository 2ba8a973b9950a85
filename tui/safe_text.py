"""Untrusted text (model output, dataset rows, file names) made safe for a terminal."""

from __future__ import annotations

import json
import re

# C0 and C1 control characters except tab and newline: ESC starts terminal escape sequences,
# which could move the cursor, retitle the window or fake output. Bidirectional formatting
# characters (U+061C, U+200E-U+200F, U+202A-U+202E, U+2066-U+2069) reorder what is shown, so
# text could read differently from what it is ("Trojan Source").
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_UNSAFE}]")


def terminal_safe(text: str) -> str:
    """``text`` without control or bidirectional formatting characters, tab and newline kept."""
    return _CONTROL.sub("", text)


def one_line(text: str, width: int) -> str:
    """The first line of ``text``, made safe and cut to ``width`` characters."""
    first = terminal_safe(text).strip().split("\n", 1)[0].replace("\t", " ")
    if len(first) > width:
        return first[: width - 1] + "…"
    return first


def json_text(value: object) -> str:
    """``value`` as indented JSON whose strings show no control or bidi character raw.

    ``json.dumps`` escapes only C0 controls; DEL, C1 controls (U+009B is a CSI) and bidi
    overrides would reach the terminal as they are, so they are written as ``\\uXXXX``
    escapes, which read back as the same JSON. Outside strings JSON holds none of them.
    """
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return _CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
