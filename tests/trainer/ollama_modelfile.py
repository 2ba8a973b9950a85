"""Ollama's Modelfile parser (``parser/parser.go``, ``ParseFile``), ported to read back what an
export writes: the same states, the same test for where a quoted value ends, the same
characters kept. Tests compare what it reads with what was meant."""

from __future__ import annotations

import unicodedata

_COMMANDS = {
    "from",
    "license",
    "template",
    "system",
    "adapter",
    "draft",
    "renderer",
    "parser",
    "parameter",
    "message",
    "requires",
}


def _printable(character: str) -> bool:
    """Go's ``strconv.IsPrint``: letters, marks, numbers, punctuation, symbols, ASCII space."""
    return character == " " or unicodedata.category(character)[0] in "LMNPS"


def _unquote(value: str) -> tuple[str, bool]:
    if value.startswith('"""'):
        if len(value) >= 6 and value.endswith('"""'):
            return value[3:-3], True
        return "", False
    if value.startswith('"'):
        if len(value) >= 2 and value.endswith('"'):
            return value[1:-1], True
        return "", False
    return value, True


def _next_state(character: str, state: str) -> tuple[str, str]:
    """``parseRuneForState``: the next state, and the character to keep ("" for none)."""
    newline, space = character in "\r\n", character in " \t"
    if state == "nil":
        if character == "#":
            return "comment", ""
        return ("nil", "") if newline or space else ("name", character)
    if state == "name":
        if character.isascii() and character.isalpha():
            return "name", character
        if space:
            return "value", ""
        raise ValueError("a command must be letters")
    if state == "value":
        return ("nil", character) if newline or space else ("value", character)
    if state == "parameter":
        if character.isascii() and (character.isalnum() or character == "_"):
            return "parameter", character
        if space:
            return "value", ""
        raise ValueError("unexpected end of a parameter name")
    return ("nil", "") if newline else ("comment", "")


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """``(command, value)`` pairs as Ollama reads them; a PARAMETER is ``(its name, value)``."""
    commands: list[tuple[str, str]] = []
    state, buffer, name = "nil", "", ""
    for character in text:
        following, kept = _next_state(character, state)
        if following != state:
            if state == "name":
                if buffer.lower() not in _COMMANDS:
                    raise ValueError(f"unknown command {buffer!r}")
                name = "model" if buffer.lower() == "from" else buffer.lower()
                if name == "parameter":
                    following = "parameter"
            elif state == "parameter":
                name = buffer
            elif state == "value":
                value, ok = _unquote(buffer.strip())
                if not ok or kept in (" ", "\t"):
                    buffer += kept
                    continue
                commands.append((name, value))
            buffer, state = "", following
        if kept and _printable(kept):
            buffer += kept
    if state == "value":
        value, ok = _unquote(buffer.strip())
        if not ok:
            raise ValueError("unexpected end of file inside a quoted value")
        commands.append((name, value))
    elif state != "nil" and state != "comment":
        raise ValueError("unexpected end of file")
    return commands
