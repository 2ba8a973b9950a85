"""Recognising examples in what a person typed: Input/Output pairs, "a -> b" lines, "text -
label" lines, pasted JSONL or CSV rows, a file path, and whether a message typed line by line
is unfinished.

An input may come without its output (the output follows in the next message): ``parse_pairs``
returns it as ``waiting``, and the interview holds it until its output comes.

Pasted rows are read by the importer's own parsers (``store.imports``), with its rules.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.jsontext import strip_code_fences
from agent.phrasing import short, unquote
from store.errors import InputError
from store.imports import ParsedFile, has_known_columns, parse_csv, parse_json_array, parse_jsonl

IMPORTABLE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv")
"""File types a path typed in the chat is imported from."""


_INPUT_MARKERS = ("input", "prompt", "question", "user", "in", "q")


_OUTPUT_MARKERS = ("output", "response", "answer", "assistant", "completion", "label", "out", "a")


_MARKER = re.compile(
    r"(?:^[ \t]*(?:[-*•][ \t]*|\d{1,3}[.)][ \t]*)?"
    r"(?P<line>input|prompt|question|user|output|response|answer|assistant|completion|label"
    r"|in|out|q|a)"
    r"|(?<=[\s.!?;,])(?P<inline>input|prompt|question|output|response|answer|completion|label))"
    r"[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)


_ARROW = re.compile(r"^\s*(?:[-*•]\s*)?(?P<input>.+?)\s+(?:->|=>|→)\s+(?P<output>.+?)\s*$")


@dataclass(frozen=True)
class PairParse:
    """The Input/Output pairs in a message, and what could not be paired."""

    pairs: tuple[tuple[str, str], ...]
    problems: tuple[str, ...] = ()
    waiting: str | None = None
    """The last input, when no output follows it yet (it may come in the next message)."""


def parse_pairs(text: str, *, held: str | None = None) -> PairParse | None:
    """The "Input: ... Output: ..." pairs in ``text``; None when it holds no example.

    It holds one when it has an input marker and an output marker, or starts with either (an
    input waiting for its output, or an output without its input, which is worth saying).
    ``held`` is an input from an earlier message; the first output in ``text`` is its output.
    """
    markers = list(_MARKER.finditer(text))
    kinds = [_marker_kind(m) for m in markers]
    if leading_marker(text) is None and not {"input", "output"} <= set(kinds):
        return None
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    pending_input = held
    for index, (marker, kind) in enumerate(zip(markers, kinds, strict=True)):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        content = unquote(text[marker.end() : end].strip())
        if kind == "input":
            if pending_input is not None:
                problems.append(f"the input {short(pending_input)} has no output")
            pending_input = content
            continue
        if pending_input is None:
            problems.append(f"the output {short(content)} has no input before it")
            continue
        if not pending_input:
            problems.append("an input is empty")
        elif not content:
            problems.append(f"the input {short(pending_input)} has an empty output")
        else:
            pairs.append((pending_input, content))
        pending_input = None
    if pending_input == "":
        problems.append("an input is empty")
    return PairParse(tuple(pairs), tuple(problems), waiting=pending_input or None)


def leading_marker(text: str) -> Literal["input", "output"] | None:
    """Whether ``text`` starts with an input marker ("Input:", "Q:") or an output marker."""
    first = _MARKER.search(text)
    if first is None or text[: first.start()].strip():
        return None
    return _marker_kind(first)


def looks_like_example(text: str) -> bool:
    """Whether ``text`` is example data rather than words about the task: it starts with an
    input or output marker, or every line is "input -> output"."""
    return leading_marker(text) is not None or parse_arrow_pairs(text) is not None


def needs_more_lines(text: str) -> bool:
    """Whether a message typed line by line is unfinished and the next line belongs to it.

    It is unfinished after a line ending in a backslash, inside a code fence or an open JSON
    object, after an "Input:" or "Output:" marker with no text yet or an open JSON object
    after it, and from a CSV header (input,output or prompt,response) until a blank line.
    An input and its output on separate lines are separate messages: the interview pairs them.
    """
    if text.endswith("\\"):
        return True
    lines = text.splitlines()
    if lines and _is_csv_header(lines[0]):
        return text.split("\n")[-1].strip() != "" or len(lines) == 1
    if sum(1 for line in lines if line.lstrip().startswith("```")) % 2:
        return True
    stripped = text.strip()
    if stripped.startswith(("{", "[")) and _unbalanced(stripped):
        return True
    if leading_marker(text) is None:
        return False
    last = list(_MARKER.finditer(text))[-1]
    after = text[last.end() :].strip()
    return not after or (after.startswith(("{", "[")) and _unbalanced(after))


def _is_csv_header(line: str) -> bool:
    names = {name.strip().lower() for name in re.split(r"[,\t]", line)}
    return len(names) >= 2 and has_known_columns(names)


def _unbalanced(text: str) -> bool:
    return text.count("{") > text.count("}") or text.count("[") > text.count("]")


def _marker_kind(match: re.Match[str]) -> Literal["input", "output"]:
    name = (match.group("line") or match.group("inline")).lower()
    return "input" if name in _INPUT_MARKERS else "output"


def parse_arrow_pairs(text: str) -> list[tuple[str, str]] | None:
    """Lines of "input -> output"; None unless every non-blank line is one."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    pairs: list[tuple[str, str]] = []
    for line in lines:
        match = _ARROW.match(line)
        if match is None:
            return None
        pairs.append((unquote(match.group("input")), unquote(match.group("output"))))
    return pairs


_LABEL_SEPARATORS = (" - ", " – ", " — ", " | ", "\t", " (", " [")
"""What may stand between an input and the label typed after it on one line. Commas and colons
are left out: "the labels are a, b" and "labels: a" are words about the task."""


def parse_labelled_lines(
    text: str, match_label: Callable[[str], str | None]
) -> list[tuple[str, str]] | None:
    """Lines of "input - label" (or "input | label", "input (label)"), where ``match_label``
    names the label the end of a line is; None unless every non-blank line is one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    pairs: list[tuple[str, str]] = []
    for line in lines:
        pair = _split_trailing_label(line, match_label)
        if pair is None:
            return None
        pairs.append(pair)
    return pairs


def _split_trailing_label(
    line: str, match_label: Callable[[str], str | None]
) -> tuple[str, str] | None:
    """The input and label of one "input - label" line: the longest input whose rest is a label."""
    for head, tail in sorted(
        (line.rpartition(separator)[::2] for separator in _LABEL_SEPARATORS),
        key=lambda split: -len(split[0]),
    ):
        label = match_label(tail) if head.strip() else None
        if label is not None:
            return unquote(head.strip()), label
    return None


def importable_path(text: str, cwd: Path) -> Path | None:
    """The example file or ``datasets`` folder ``text`` names, when it exists."""
    candidate = text.strip()
    lowered = candidate.lower()
    for prefix in ("import ", "load ", "use ", "read ", "from "):
        if lowered.startswith(prefix):
            candidate = candidate[len(prefix) :].strip()
            break
    candidate = unquote(candidate)
    if not candidate or "\n" in candidate or len(candidate) > 4096:
        return None
    path = Path(candidate).expanduser()
    if not path.is_absolute():
        path = cwd / path
    try:
        if path.is_file() and path.suffix.lower() in IMPORTABLE_SUFFIXES:
            return path
        if path.is_dir() and (
            (path / "state.json").exists() or (path / "dataset_dict.json").exists()
        ):
            return path
    except OSError:
        return None
    return None


def pasted_rows(text: str) -> ParsedFile | None:
    """Pasted JSONL, a JSON array or CSV/TSV of example rows, read by the importer's parsers
    (rows rejected as ``line N``); None when the text is not such rows.

    JSON counts as rows when at least one of them is an example (a lone JSON object may be a
    sample answer instead); CSV when its first line is a prompt/response-style header.
    """
    body = strip_code_fences(text).strip()
    if body.startswith(("{", "[")):
        try:
            parsed = parse_json_array(body) if body.startswith("[") else parse_jsonl(body)
        except InputError:
            return None
        return parsed if parsed.examples else None
    lines = body.splitlines()
    if len(lines) < 2:
        return None
    delimiter = "\t" if "\t" in lines[0] else ","
    try:
        header = next(csv.reader([lines[0]], delimiter=delimiter), [])
    except csv.Error:
        return None
    if not has_known_columns(column.strip().lower() for column in header):
        return None
    parsed = parse_csv(body, delimiter=delimiter)
    return parsed if parsed.examples or parsed.rejected else None
