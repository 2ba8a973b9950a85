"""Colours of the app's theme as Rich styles, for cells and lines built as Rich ``Text``."""

from __future__ import annotations

from rich.color import Color, ColorParseError


def theme_color(variables: dict[str, str], name: str) -> str:
    """The theme variable ``name`` as a Rich colour, or ``""`` when Rich cannot use it.

    Some theme values are Textual-only (``auto 60%``); the text keeps its default colour then,
    rather than failing to render.
    """
    value = variables.get(name, "")
    # ANSI themes name the terminal's own colours ("ansi_green"); Rich calls them "green".
    value = value.removeprefix("ansi_")
    try:
        Color.parse(value)
    except ColorParseError:
        return ""
    return value
