"""Untrusted text (dataset rows, model output, names) as Rich Text: no markup, no controls."""

from __future__ import annotations

from rich.text import Text

from tui.safe_text import one_line, terminal_safe


def plain(text: str, max_len: int | None = None) -> Text:
    """``text`` as literal ``Text`` without control characters; with ``max_len``, its first line
    cut to at most that many terminal cells.

    A ``Text`` is never parsed as markup, so ``[/]`` or ``[@click=app.quit]`` shows as typed, and
    with control characters removed an ESC cannot start a terminal escape sequence.
    """
    if max_len is None:
        return Text(terminal_safe(text), end="")
    line = Text(one_line(text, max_len), no_wrap=True, overflow="ellipsis", end="")
    # one_line counts characters; wide characters (CJK, emoji) take two cells each.
    line.truncate(max_len, overflow="ellipsis")
    return line
