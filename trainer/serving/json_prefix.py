"""Whether a text is the start of a JSON value of a shape, one character at a time.

A state is a tuple of frames, the innermost value last; it is immutable and hashable, so the
decoder can keep what it worked out for a state. ``advance`` reads text on from a state (None
once the text can no longer become a value of the shape); ``shortest_completion`` says how many
characters at least finish it, which lets the decoder close the value before its tokens run
out. The root value is always an object, so a state is complete exactly when it is empty.

Frames (the tag first):

- ``("v", shape)``: a value of ``shape`` is due (whitespace may come first);
- ``("s", escape)``: inside a string of any text; ``escape`` is 0, 1 after a backslash, or
  2-5 inside ``\\uXXXX`` with ``escape - 2`` hex digits read;
- ``("l", texts, typed)``: ``typed`` so far of one of the exact JSON ``texts`` (an enum
  value, ``true``, or a declared key with its quotes);
- ``("n", integer_only, phase)``: a number;
- ``("o", shape, used_keys, phase, key)``: an object; ``key`` is the key whose value is due;
- ``("a", shape, phase)``: an array;
- ``("w", count)``: ``count`` whitespace characters in a row, on top of the frame they follow.
  A run is at most ``MAX_WHITESPACE`` long: enough to indent, not enough to fill an answer.
"""

from __future__ import annotations

from typing import Any

from trainer.serving.json_schema import ANY_VALUE, Shape

State = tuple[tuple[Any, ...], ...]
"""A decoder state: frames, outermost first."""

WHITESPACE = frozenset(" \t\n\r")

MAX_WHITESPACE = 16
"""Longest run of whitespace between two tokens of JSON (a new line and some indentation)."""
_ESCAPED = frozenset('"\\/bfnrt')
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_NUMBER_DONE = frozenset({"zero", "int", "frac", "expd"})
"""Number phases at which the number may end."""

_STRING_REST = (1, 2, 5, 4, 3, 2)
"""Characters that close a string, by its escape value: a quote, after a backslash one more,
inside ``\\u`` the hex digits left."""


def start_state(shape: Shape) -> State:
    """The state before any text: a value of ``shape`` is due."""
    return (("v", shape),)


def is_complete(state: State) -> bool:
    """Whether the text read is a whole value (nothing may follow it)."""
    return not state


def advance(state: State | None, text: str) -> State | None:
    """The state after ``text``; None once it cannot start a value of the shape."""
    for character in text:
        if state is None:
            return None
        state = _step(state, character)
    return state


def _step(state: State, character: str) -> State | None:
    if not state:
        return None
    frame = state[-1]
    below = state[:-1]
    tag = frame[0]
    if tag == "s":
        return _string_step(below, frame[1], character)
    if tag == "l":
        return _literal_step(below, frame[1], frame[2], character)
    if tag == "n":
        return _number_step(below, frame[1], frame[2], character)
    if tag == "v":
        return _value_step(below, frame[1], character)
    if tag == "w":
        if character in WHITESPACE:
            return (*below, ("w", frame[1] + 1)) if frame[1] < MAX_WHITESPACE else None
        return _step(below, character)
    if tag == "o":
        return _object_step(below, frame, character)
    return _array_step(below, frame, character)


def _string_step(below: State, escape: int, character: str) -> State | None:
    if escape == 0:
        if character == '"':
            return _finished(below, None)
        if character == "\\":
            return (*below, ("s", 1))
        if character < " ":
            return None
        return (*below, ("s", 0))
    if escape == 1:
        if character == "u":
            return (*below, ("s", 2))
        return (*below, ("s", 0)) if character in _ESCAPED else None
    if character not in _HEX:
        return None
    return (*below, ("s", 0 if escape == 5 else escape + 1))


def _literal_step(below: State, texts: tuple[str, ...], typed: str, character: str) -> State | None:
    extended = typed + character
    matching = tuple(text for text in texts if text.startswith(extended))
    if matching:
        if matching == (extended,):
            return _finished(below, extended)
        return (*below, ("l", matching, extended))
    if typed in texts:
        # A literal that another one extends (1 and 12) ends at the first character past it.
        finished = _finished(below, typed)
        return None if finished is None else _step(finished, character)
    return None


_NUMBER_MOVES = {
    "sign": {"digit": "int"},
    "zero": {".": "dot", "e": "exp"},
    "int": {"digit": "int", ".": "dot", "e": "exp"},
    "dot": {"digit": "frac"},
    "frac": {"digit": "frac", "e": "exp"},
    "exp": {"digit": "expd", "sign": "exps"},
    "exps": {"digit": "expd"},
    "expd": {"digit": "expd"},
}
"""A number's next phase by its phase and the class of the next character."""


def _number_step(below: State, integer_only: bool, phase: str, character: str) -> State | None:
    if character in _DIGITS:
        kind = "digit"
    else:
        kind = {".": ".", "e": "e", "E": "e", "+": "sign", "-": "sign"}.get(character, "")
    following = _NUMBER_MOVES[phase].get(kind)
    if phase == "sign" and character == "0":
        following = "zero"
    if integer_only and kind in (".", "e"):
        following = None
    if following is not None:
        return (*below, ("n", integer_only, following))
    if phase not in _NUMBER_DONE:
        return None
    # The number has ended: the character belongs to what follows it.
    finished = _finished(below, None)
    return None if finished is None else _step(finished, character)


def _value_step(below: State, shape: Shape, character: str) -> State | None:
    # The answer itself starts with its value: no whitespace before the root.
    if character in WHITESPACE and below:
        return (*below, ("v", shape), ("w", 1))
    literals = tuple(text for text in shape.literals if text.startswith(character))
    if literals:
        if literals == (character,):
            return _finished(below, character)
        return (*below, ("l", literals, character))
    kinds = shape.kinds
    if character == '"' and "string" in kinds:
        return (*below, ("s", 0))
    if character == "{" and "object" in kinds:
        return (*below, ("o", shape, frozenset(), "open", None))
    if character == "[" and "array" in kinds:
        return (*below, ("a", shape, "open"))
    if (character == "-" or character in _DIGITS) and kinds & {"integer", "number"}:
        phase = "sign" if character == "-" else ("zero" if character == "0" else "int")
        return (*below, ("n", "number" not in kinds, phase))
    words = [word for kind, word in _WORDS if kind in kinds and word[0] == character]
    if words:
        return (*below, ("l", tuple(words), character))
    return None


_WORDS = (("boolean", "true"), ("boolean", "false"), ("null", "null"))


def _object_step(below: State, frame: tuple[Any, ...], character: str) -> State | None:
    _, shape, used, phase, key = frame
    if character in WHITESPACE:
        return (*below, frame, ("w", 1))
    if phase in ("open", "next") and character == "}":
        return _finished(below, None) if shape.required <= used else None
    if phase == "next" and character == ",":
        return (*below, ("o", shape, used, "comma", None)) if _keys_left(shape, used) else None
    if phase in ("open", "comma") and character == '"':
        waiting = (*below, ("o", shape, used, "key", None))
        if shape.properties is None:
            return (*waiting, ("s", 0))
        texts = tuple(text for text, name in shape.key_texts.items() if name not in used)
        return (*waiting, ("l", texts, '"')) if texts else None
    if phase == "colon" and character == ":":
        return (*below, ("o", shape, used, "value", key), ("v", shape.property_shape(key)))
    return None


def _array_step(below: State, frame: tuple[Any, ...], character: str) -> State | None:
    _, shape, phase = frame
    if character in WHITESPACE:
        return (*below, frame, ("w", 1))
    if phase in ("open", "next") and character == "]":
        return _finished(below, None)
    if phase == "next":
        return (*below, ("a", shape, "comma")) if character == "," else None
    items = shape.items or ANY_VALUE
    return _value_step((*below, ("a", shape, "value")), items, character)


def _finished(below: State, literal: str | None) -> State | None:
    """The state once the innermost value (a literal's text, when it was one) has ended."""
    if not below:
        return ()
    parent = below[-1]
    if parent[0] == "a":
        return (*below[:-1], ("a", parent[1], "next"))
    _, shape, used, phase, key = parent
    if phase == "key":
        name = None if literal is None else shape.key_texts[literal]
        return (*below[:-1], ("o", shape, used, "colon", name))
    if key is not None:
        used = used | {key}
    return (*below[:-1], ("o", shape, used, "next", None))


def _keys_left(shape: Shape, used: frozenset[str]) -> bool:
    """Whether an object may take another key."""
    return shape.properties is None or len(used) < len(shape.properties)


def shortest_completion(state: State) -> int:
    """The fewest characters that make the text read a whole value."""
    total = 0
    index = len(state) - 1
    while index >= 0:
        frame = state[index]
        tag = frame[0]
        if tag == "s":
            total += _STRING_REST[frame[1]]
        elif tag == "n":
            total += 0 if frame[2] in _NUMBER_DONE else 1
        elif tag == "v":
            total += frame[1].shortest
        elif tag == "w":
            pass
        elif tag == "l":
            parent = state[index - 1] if index else None
            if parent is not None and parent[0] == "o" and parent[3] == "key":
                # Which key this becomes decides the value that follows it.
                _, shape, used, _, _ = parent
                total += min(
                    len(text) - len(frame[2]) + 1 + _after_key(shape, used, shape.key_texts[text])
                    for text in frame[1]
                )
                index -= 2
                continue
            total += min(len(text) for text in frame[1]) - len(frame[2])
        elif tag == "o":
            total += _object_cost(frame)
        else:
            # An array closes with "]", after a value when a comma came last.
            total += 1 + ((frame[1].items or ANY_VALUE).shortest if frame[2] == "comma" else 0)
        index -= 1
    return total


def _object_cost(frame: tuple[Any, ...]) -> int:
    """Characters that close an object frame (after its innermost value, when one is open)."""
    shape: Shape = frame[1]
    used: frozenset[str] = frame[2]
    phase, key = frame[3], frame[4]
    if phase == "open":
        return _object_rest(shape, used) - (1 if shape.required else 0)
    if phase == "comma":
        if shape.required - used:
            return _object_rest(shape, used) - 1
        if shape.properties is None:
            return len('"":') + ANY_VALUE.shortest + 1
        # A comma is only read while a key is left, so there is one to write.
        return min(shape.key_cost(name) for name in shape.properties if name not in used) + 1
    if phase == "key":
        return 1 + ANY_VALUE.shortest + _object_rest(shape, used)
    if phase == "colon":
        return 1 + _after_key(shape, used, key)
    if phase == "value":
        return _object_rest(shape, used if key is None else used | {key})
    return _object_rest(shape, used)


def _after_key(shape: Shape, used: frozenset[str], key: str | None) -> int:
    """Characters after a key's colon: its shortest value, then the object's rest."""
    rest = _object_rest(shape, used if key is None else used | {key})
    return shape.property_shape(key).shortest + rest


def _object_rest(shape: Shape, used: frozenset[str]) -> int:
    """Characters that close an object after a value: a comma and entry per missing key, ``}``."""
    return sum(1 + shape.key_cost(name) for name in shape.required - used) + 1
