"""Untrusted text (model output, dataset rows, file names) made safe for a terminal."""

from __future__ import annotations

import re

# C0 and C1 control characters except tab and newline: ESC starts terminal escape sequences,
# which could move the cursor, retitle the window or fake output.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` with control characters other than tab and newline removed."""
    return _CONTROL.sub("", text)


def one_line(text: str, width: int) -> str:
    """The first line of ``text``, made safe and cut to ``width`` characters."""
    first = terminal_safe(text).strip().split("\n", 1)[0].replace("\t", " ")
    if len(first) > width:
        return first[: width - 1] + "…"
    return first
