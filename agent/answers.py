"""Recognising what a person typed: example pairs, pasted rows, labels, JSON samples, statements.

Every function here is pure: text in, what it says out, nothing stored.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.jsontext import JsonTextError, loads_lenient, strip_code_fences
from store.errors import InputError
from store.imports import ParsedFile, RejectedRow, record_to_example

IMPORTABLE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv")
"""File types a path typed in the chat is imported from."""

MAX_LABEL_WORDS = 4
MAX_LABEL_CHARS = 40

_CORRECTION = re.compile(
    r"^(?:no+|nope|actually|wait|sorry|oops|correction|i meant|rather|not quite)\b[\s,.:;!—–-]*",
    re.IGNORECASE,
)
_GREETING = re.compile(r"^(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening))\b[\s,.!]*", re.I)
_SKIP = re.compile(
    r"^(?:skip(?: it| this| that)?|none|no+|nope|nothing|n/?a|pass|next|no thanks|not really"
    r"|no (?:rules|constraints|style|preference|cases|requirements|special cases)"
    r"|nothing special|none needed|not needed|doesn'?t matter|no idea|later)[.!]*$",
    re.IGNORECASE,
)
_YES = re.compile(
    r"^(?:y|yes|yep|yeah|yup|sure|ok|okay|accept(?: it)?|use it|looks good|lgtm|fine|good|great"
    r"|perfect|sounds good|that works|correct|right)\b[\s,.!]*(?:please|thanks|thank you)?[.!]*$",
    re.IGNORECASE,
)

_INPUT_MARKERS = ("input", "prompt", "question", "user", "in", "q")
_OUTPUT_MARKERS = ("output", "response", "answer", "assistant", "completion", "label", "out", "a")
_MARKER = re.compile(
    r"(?:^[ \t]*(?:[-*•][ \t]*|\d{1,3}[.)][ \t]*)?"
    r"(?P<line>input|prompt|question|user|output|response|answer|assistant|completion|label"
    r"|in|out|q|a)"
    r"|(?<=\s)(?P<inline>input|prompt|question|output|response|answer|completion|label))"
    r"[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)
_ARROW = re.compile(r"^\s*(?:[-*•]\s*)?(?P<input>.+?)\s+(?:->|=>|→)\s+(?P<output>.+?)\s*$")

_LIST_SEPARATOR = re.compile(r"\s*(?:,|;|\||/|\band\b|\bor\b|&|\+)\s*", re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d{1,3}[.)])\s+")
_STOP_STARTS = {
    "a", "an", "the", "in", "with", "of", "to", "for", "by", "as", "at", "on", "that", "which",
    "it", "be", "is", "are", "should", "must", "i", "we", "you", "they", "this",
}  # fmt: skip

_LABEL_NOUN = (
    r"(?:labels?|categories|category|classes|class|tags|intents|buckets|topics|sentiments"
    r"|options|choices|types|classifications)"
)
_LABELS_STATEMENT = re.compile(
    rf"^(?:(?:the|its|our|my|possible|allowed|valid)\s+)*{_LABEL_NOUN}"
    r"\s*(?:(?:should|would|will|could|can|must)\s+be|are|is|include|=|:)\s*"
    r"(?:(?:one|any)\s+of\s*:?\s*|either\s+)?(?P<list>.+)$",
    re.IGNORECASE | re.DOTALL,
)
_LABELS_IN_GOAL = re.compile(
    r"\b(?:classif\w*|categori[sz]\w*|sort\w*|rout\w*|label\w*|tag\w*|triag\w*|bucket\w*)\b"
    r"[^.;:]*?\b(?:into|as)\s+(?:(?:one|any)\s+of\s+)?(?:either\s+)?:?\s*(?P<list>[^.;]+)",
    re.IGNORECASE,
)
_ONE_OF = re.compile(r"\b(?:one|any) of\s*:?\s*(?P<list>[^.;]+)", re.IGNORECASE)
_LABELS_ADD = re.compile(
    rf"^(?:also\s+)?add\s+(?:(?:a|the|another)\s+)?{_LABEL_NOUN}?\s*:?\s*(?P<list>.+)$", re.I
)
_LABELS_REMOVE = re.compile(
    rf"^(?:remove|drop|delete)\s+(?:the\s+)?{_LABEL_NOUN}?\s*:?\s*(?P<list>.+)$", re.I
)
_JSON_FIELDS = re.compile(
    r"(?:^|\bjson\b[^.]*?\b)(?:the\s+)?(?:fields|keys|properties|attributes)"
    r"\s*(?:are|:|=|should be|would be|will be)?\s*(?P<list>[^.]+)",
    re.IGNORECASE,
)
_GOAL = re.compile(
    r"^(?:(?:so\s+|well\s+)?i(?:'d| would)?\s+(?:really\s+)?(?:need|want|like)"
    r"(?:\s+to\s+(?:build|make|train|have|get|create|fine-?tune))?"
    r"\s+(?:a|an|some|my|our)?\s*(?:[\w-]+\s+){0,3}?"
    r"(?:model|classifier|assistant|bot|llm|tool|system|something|ai|extractor)"
    r"\s+(?:that|to|which|who|for|able to)\s+(?P<third>.+)"
    r"|(?:the\s+)?(?:goal|task|job|purpose|idea|aim)\s+is\s+(?:to\s+)?(?P<plain>.+)"
    r"|(?:(?:please\s+)?(?:build|make|train|create|fine-?tune)\s+(?:me\s+)?(?:a|an)\s+"
    r"(?:[\w-]+\s+){0,3}?(?:model|classifier)\s+(?:that|to|which|for)\s+(?P<third2>.+))"
    r"|(?:i\s+want\s+to|we\s+(?:need|want)\s+to|help\s+me)\s+(?P<plain2>.+))$",
    re.IGNORECASE | re.DOTALL,
)
_INPUT = re.compile(
    r"^(?:(?:the|each|every|an?)\s+)?inputs?\s*(?:is|are|will be|would be|consists? of|:)\s*"
    r"(?P<rest>.+)"
    r"|^(?:it|the model)\s+(?:will\s+)?(?:gets?|receives?|reads?|sees?|takes?|is given)\s+"
    r"(?:as input\s+)?(?P<rest2>.+)$",
    re.IGNORECASE | re.DOTALL,
)
_OUTPUT = re.compile(
    r"^(?:(?:the|each|every|an?)\s+)?(?:outputs?|answers?|responses?|replies)\s*"
    r"(?:is|are|should be|will be|would be|must be|:)\s*(?P<rest>.+)"
    r"|^(?:it|the model)\s+should\s+(?:answer|reply|respond|return|output|produce|give back|give)"
    r"\s+(?:with\s+)?(?P<rest2>.+)$",
    re.IGNORECASE | re.DOTALL,
)
_RULES = re.compile(
    r"^(?:the\s+)?(?:rules?|constraints?)\s*(?:are|is|:|=)\s*(?P<rest>.+)$", re.I | re.DOTALL
)
_IMPERATIVE_RULE_START = re.compile(
    r"^(?:use|return|reply|respond|leave|put|prefer|ignore|keep|only|include|set)\b", re.I
)
_RULE_START = re.compile(
    r"^(?:never|always|must|do not|don'?t|avoid|no more than|at most|at least|make sure"
    r"|it (?:must|should) (?:never|always|not))\b",
    re.IGNORECASE,
)
_STYLE = re.compile(
    r"^(?:the\s+)?(?:style|tone|voice|register)\s*(?:is|should be|must be|:|=)\s*(?P<rest>.+)$",
    re.IGNORECASE | re.DOTALL,
)
_CASES = re.compile(
    r"^(?:the\s+)?(?:cases|requirements?|scenarios|edge cases|situations)"
    r"(?:\s+to\s+cover)?\s*(?:are|is|:|=|include)\s*(?P<rest>.+)$"
    r"|^(?:it|the examples)\s+(?:must|should)\s+(?:cover|handle|include)\s+(?P<rest2>.+)$",
    re.IGNORECASE | re.DOTALL,
)
_SYSTEM_PROMPT = re.compile(
    r"^(?:the\s+|use\s+(?:this|the)\s+)?system\s*prompt\s*(?:is|should be|:|=)?\s*:?\s*"
    r"(?P<rest>.+)$",
    re.IGNORECASE | re.DOTALL,
)
_TARGET = re.compile(
    r"\b(?:target|aim for|aim at|i want|we need|i need|collect|get|about|around)\s*:?\s*"
    r"(?:about\s+|around\s+)?(?P<count>\d{1,5})\s+examples\b"
    r"|^target\s*:?\s*(?P<count2>\d{1,5})\s*$",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]+")
_VOWELS = set("aeiouyäöüéèêáàíóúåæøœ")


@dataclass(frozen=True)
class PairParse:
    """The Input/Output pairs in a message, and what could not be paired."""

    pairs: tuple[tuple[str, str], ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class JsonSample:
    """A sample JSON answer: its keys, and the sample as compact text."""

    fields: tuple[str, ...]
    text: str
    values: dict[str, Any] = field(default_factory=dict)


def split_correction(text: str) -> tuple[bool, str]:
    """Whether ``text`` starts as a correction ("no, ...", "actually ..."), and the rest."""
    match = _CORRECTION.match(text)
    if match is None:
        return False, text
    return True, text[match.end() :].strip()


def strip_greeting(text: str) -> str:
    """``text`` without a leading "hi," or "hello!"."""
    return _GREETING.sub("", text, count=1).strip()


def is_skip(text: str) -> bool:
    """Whether ``text`` declines the question ("skip", "none", "no")."""
    return bool(_SKIP.match(text.strip()))


def is_yes(text: str) -> bool:
    """Whether ``text`` accepts a proposal ("yes", "ok", "looks good")."""
    return bool(_YES.match(text.strip()))


def looks_like_junk(text: str, *, min_words: int = 1) -> bool:
    """Whether ``text`` is no answer at all: symbols, keyboard mash, too few words."""
    visible = [char for char in text if not char.isspace()]
    if not visible:
        return True
    letters = sum(1 for char in visible if char.isalpha())
    if letters < 2 or letters / len(visible) < 0.5:
        return True
    words = _WORD.findall(text)
    real_words = [w for w in words if _is_wordlike(w)]
    if len(real_words) < min_words:
        return True
    return len(real_words) * 2 < len(words)


def _is_wordlike(word: str) -> bool:
    lowered = word.lower()
    if not any(char in _VOWELS for char in lowered):
        # Short vowel-less tokens are abbreviations (SQL, CRM, PDF); long ones are mashing.
        return len(lowered) <= 4 and word.isupper()
    if re.search(r"(.)\1{3,}", lowered):
        return False
    return not re.search(r"[^aeiouyäöüéèêáàíóúåæøœ]{6,}", lowered)


def parse_pairs(text: str) -> PairParse | None:
    """The "Input: ... Output: ..." pairs in ``text``; None when it holds no example.

    It holds one when it has an input marker and an output marker, or starts with an input
    marker (a pair whose output is missing, which is worth saying).
    """
    markers = list(_MARKER.finditer(text))
    kinds = [_marker_kind(m) for m in markers]
    if "input" not in kinds:
        return None
    if "output" not in kinds and not _starts_with_input_marker(text, markers, kinds):
        return None
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    pending_input: str | None = None
    for index, (marker, kind) in enumerate(zip(markers, kinds, strict=True)):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        content = _unquote(text[marker.end() : end].strip())
        if kind == "input":
            if pending_input is not None:
                problems.append(f"the input {_short(pending_input)} has no output")
            pending_input = content
            continue
        if pending_input is None:
            problems.append(f"the output {_short(content)} has no input before it")
            continue
        if not pending_input:
            problems.append("an input is empty")
        elif not content:
            problems.append(f"the input {_short(pending_input)} has an empty output")
        else:
            pairs.append((pending_input, content))
        pending_input = None
    if pending_input is not None:
        problems.append(
            f"the input {_short(pending_input)} has no output"
            if pending_input
            else "an input is empty"
        )
    return PairParse(tuple(pairs), tuple(problems))


def _starts_with_input_marker(text: str, markers: list[re.Match[str]], kinds: list[str]) -> bool:
    return bool(markers) and kinds[0] == "input" and not text[: markers[0].start()].strip()


def needs_more_lines(text: str) -> bool:
    """Whether a message typed line by line is unfinished and the next line belongs to it.

    It is unfinished after a line ending in a backslash, inside a code fence or an open JSON
    object, from an "Input:" line until its "Output:" has some text, and from a CSV header
    (input,output or prompt,response) until a blank line.
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
    markers = list(_MARKER.finditer(text))
    kinds = [_marker_kind(m) for m in markers]
    if not _starts_with_input_marker(text, markers, kinds):
        return False
    if kinds[-1] == "input":
        return True
    answer = text[markers[-1].end() :].strip()
    return not answer or (answer.startswith(("{", "[")) and _unbalanced(answer))


def _is_csv_header(line: str) -> bool:
    names = {name.strip().lower() for name in re.split(r"[,\t]", line)}
    return len(names) >= 2 and _known_columns(names)


def _known_columns(names: set[str]) -> bool:
    return bool(
        {"prompt", "response"} <= names
        or {"prompt", "completion"} <= names
        or {"input", "output"} <= names
        or {"instruction", "output"} <= names
    )


def _unbalanced(text: str) -> bool:
    return text.count("{") > text.count("}") or text.count("[") > text.count("]")


def _marker_kind(match: re.Match[str]) -> str:
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
        pairs.append((_unquote(match.group("input")), _unquote(match.group("output"))))
    return pairs


def parse_pasted_records(text: str) -> ParsedFile | None:
    """Pasted JSONL (or a JSON array) of example records; None unless some line is one."""
    body = strip_code_fences(text).strip()
    if not body.startswith(("{", "[")):
        return None
    if body.startswith("["):
        try:
            array = json.loads(body)
        except (json.JSONDecodeError, RecursionError):
            return None
        if not isinstance(array, list):
            return None
        return _records(list(enumerate(array, start=1)), "item")
    numbered: list[tuple[int, object]] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            numbered.append((number, loads_lenient(line)))
        except JsonTextError as error:
            numbered.append((number, error))
    return _records(numbered, "line")


def _records(numbered: list[tuple[int, object]], unit: str) -> ParsedFile | None:
    parsed = ParsedFile()
    for number, record in numbered:
        if isinstance(record, JsonTextError):
            parsed.rejected.append(RejectedRow(f"{unit} {number}", f"not valid JSON ({record})"))
            continue
        try:
            parsed.examples.append(record_to_example(record))
        except InputError as error:
            parsed.rejected.append(RejectedRow(f"{unit} {number}", error.message))
    return parsed if parsed.examples else None


def parse_pasted_csv(text: str) -> ParsedFile | None:
    """Pasted CSV or TSV with a prompt/response-style header; None when it is not that."""
    body = strip_code_fences(text).strip()
    lines = body.splitlines()
    if len(lines) < 2:
        return None
    delimiter = "\t" if "\t" in lines[0] else ","
    reader = csv.reader(io.StringIO(body, newline=""), delimiter=delimiter)
    try:
        header = [column.strip().lower() for column in next(reader)]
        rows = list(reader)
    except csv.Error:
        return None
    if not _known_columns(set(header)):
        return None
    parsed = ParsedFile()
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            parsed.rejected.append(
                RejectedRow(f"line {number}", f"expected {len(header)} columns, got {len(row)}")
            )
            continue
        record: dict[str, Any] = dict(zip(header, row, strict=True))
        if "tags" in record:
            record["tags"] = [tag for tag in str(record["tags"]).split(",") if tag.strip()]
        try:
            parsed.examples.append(record_to_example(record))
        except InputError as error:
            parsed.rejected.append(RejectedRow(f"line {number}", error.message))
    return parsed if parsed.examples or parsed.rejected else None


def importable_path(text: str, cwd: Path) -> Path | None:
    """The example file or ``datasets`` folder ``text`` names, when it exists."""
    candidate = text.strip()
    lowered = candidate.lower()
    for prefix in ("import ", "load ", "use ", "read ", "from "):
        if lowered.startswith(prefix):
            candidate = candidate[len(prefix) :].strip()
            break
    candidate = _unquote(candidate)
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


def parse_json_sample(text: str) -> JsonSample | JsonTextError | None:
    """A sample JSON answer in ``text``; an error when it tries and fails; else None."""
    body = strip_code_fences(text).strip()
    start = body.find("{")
    if start < 0:
        return None
    if start > 0 and not body[:start].rstrip().lower().endswith((":", "like", "e.g.", "json")):
        return None
    end = body.rfind("}")
    if end < start:
        return JsonTextError("the JSON object is not closed")
    try:
        value = loads_lenient(body[start : end + 1])
    except JsonTextError as error:
        return error
    if not isinstance(value, dict):
        return JsonTextError("not a JSON object")
    if not value:
        return JsonTextError("the object has no keys")
    return JsonSample(
        fields=tuple(str(key) for key in value),
        text=json.dumps(value, ensure_ascii=False),
        values=value,
    )


def split_items(text: str) -> list[str]:
    """The items of a list written as lines, bullets, or "a, b and c"."""
    text = text.strip()
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        pieces = [_BULLET.sub("", line) for line in lines]
    else:
        pieces = _LIST_SEPARATOR.split(_BULLET.sub("", text).rstrip(".!"))
    items: list[str] = []
    seen: set[str] = set()
    for piece in pieces:
        item = _unquote(piece.strip().rstrip(".!;,").strip())
        if item and item.casefold() not in seen:
            items.append(item)
            seen.add(item.casefold())
    return items


def parse_label_list(text: str, *, minimum: int = 2) -> tuple[str, ...] | None:
    """Labels written as a short list ("a, b and c", bullets); None when it is not such a list."""
    body = text.strip()
    if not body or ("\n" not in body and not _LIST_SEPARATOR.search(body) and minimum > 1):
        return None
    items = split_items(body)
    if len(items) < minimum:
        return None
    for item in items:
        words = item.split()
        if len(words) > MAX_LABEL_WORDS or len(item) > MAX_LABEL_CHARS:
            return None
        if minimum > 1 and words[0].lower() in _STOP_STARTS:
            return None
    return tuple(items)


def labels_statement(text: str) -> tuple[str, ...] | None:
    """Labels named outright: "the labels are a, b and c", "classify into a, b or c"."""
    match = _LABELS_STATEMENT.match(text.strip())
    if match is not None:
        labels = parse_label_list(match.group("list"))
        if labels is not None:
            return labels
    for pattern in (_LABELS_IN_GOAL, _ONE_OF):
        found = pattern.search(text)
        if found is not None:
            labels = parse_label_list(found.group("list"))
            if labels is not None:
                return labels
    return None


def labels_added(text: str) -> tuple[str, ...] | None:
    """Labels to add: "add label refunds", "also add a category: spam"."""
    match = _LABELS_ADD.match(text.strip())
    return parse_label_list(match.group("list"), minimum=1) if match else None


def labels_removed(text: str) -> tuple[str, ...] | None:
    """Labels to drop: "remove label spam"."""
    match = _LABELS_REMOVE.match(text.strip())
    return parse_label_list(match.group("list"), minimum=1) if match else None


def json_fields_statement(text: str) -> tuple[str, ...] | None:
    """JSON keys named outright: "the fields are name, email and order"."""
    match = _JSON_FIELDS.search(text)
    if match is None:
        return None
    fields = parse_label_list(match.group("list"), minimum=1)
    if fields is None:
        return None
    return tuple(re.sub(r"\W+", "_", item.strip()).strip("_").lower() for item in fields)


def goal_statement(text: str) -> str | None:
    """The goal in "I need a model that ...", "the goal is to ...", as an imperative phrase."""
    match = _GOAL.match(strip_greeting(text))
    if match is None:
        return None
    third = match.group("third") or match.group("third2")
    if third:
        return clean_phrase(_imperative(third))
    return clean_phrase(match.group("plain") or match.group("plain2"))


def input_statement(text: str) -> str | None:
    """The input in "the input is ...", "it gets ..."."""
    match = _INPUT.match(text.strip())
    if match is None:
        return None
    return clean_phrase(match.group("rest") or match.group("rest2"))


def output_statement(text: str) -> str | None:
    """The answer format in "the output is ...", "it should answer with ..."."""
    match = _OUTPUT.match(text.strip())
    if match is None:
        return None
    return clean_phrase(match.group("rest") or match.group("rest2"))


def rules_statement(text: str, *, imperatives: bool = False) -> list[str] | None:
    """Rules in "rules: ...", or a message that is itself a rule ("never ...", "always ...").

    With ``imperatives``, a message that starts with an instruction ("use null for ...",
    "return ...") is a rule too; before the task is known it more likely states the goal.
    """
    stripped = text.strip()
    match = _RULES.match(stripped)
    if match is not None:
        return split_sentences(match.group("rest"))
    if _RULE_START.match(stripped) or (imperatives and _IMPERATIVE_RULE_START.match(stripped)):
        return split_sentences(stripped)
    return None


def style_statement(text: str) -> str | None:
    """The style in "the tone should be ...", "style: ..."."""
    match = _STYLE.match(text.strip())
    return clean_phrase(match.group("rest")) if match else None


def cases_statement(text: str) -> list[str] | None:
    """Cases to cover in "cases: ...", "the examples must cover ..."."""
    match = _CASES.match(text.strip())
    if match is None:
        return None
    return split_cases(match.group("rest") or match.group("rest2"))


def system_prompt_statement(text: str) -> str | None:
    """A system prompt given outright: "system prompt: ..."."""
    match = _SYSTEM_PROMPT.match(text.strip())
    if match is None:
        return None
    prompt = _unquote(match.group("rest").strip())
    return prompt if len(prompt.split()) >= 2 else None


def target_statement(text: str) -> int | None:
    """A target number of examples: "aim for 200 examples"."""
    match = _TARGET.search(text)
    if match is None:
        return None
    count = int(match.group("count") or match.group("count2"))
    return count if count > 0 else None


def split_sentences(text: str) -> list[str]:
    """Rules or notes written as lines, bullets or sentences."""
    lines = [_BULLET.sub("", line).strip() for line in text.splitlines() if line.strip()]
    sentences: list[str] = []
    for line in lines:
        for sentence in re.split(r"(?<=[.!?;])\s+", line):
            cleaned = clean_phrase(sentence)
            if cleaned:
                sentences.append(cleaned)
    return sentences


def split_cases(text: str) -> list[str]:
    """Cases written as lines, bullets, "a; b" or a comma list of short phrases."""
    stripped = text.strip()
    if "\n" in stripped or ";" in stripped:
        parts = [_BULLET.sub("", p) for p in re.split(r"\n|;", stripped)]
    else:
        parts = re.split(r",\s*(?:and\s+|or\s+)?|\s+and\s+(?=\w+\s+\w+)", stripped)
        if any(len(part.split()) > 8 for part in parts):
            parts = [stripped]
    cases: list[str] = []
    for part in parts:
        cleaned = clean_phrase(part)
        if cleaned and cleaned.casefold() not in {c.casefold() for c in cases}:
            cases.append(cleaned)
    return cases


def clean_phrase(text: str) -> str:
    """``text`` with outer whitespace, quotes and end punctuation removed."""
    return _unquote(" ".join(text.split()).strip().rstrip(".!;,").strip())


def mentions_json(text: str) -> bool:
    """Whether ``text`` asks for JSON answers."""
    return bool(re.search(r"\bjson\b", text, re.IGNORECASE))


def mentions_labels(text: str) -> bool:
    """Whether ``text`` talks about classifying into labels or categories."""
    return bool(
        re.search(
            r"\b(?:classif\w*|categori[sz]\w*|labels?|categor(?:y|ies)|class(?:es)?|triag\w*"
            r"|sentiment|intent|sort\w* (?:\w+ )*into|route|routing|tag(?:s|ging)?)\b",
            text,
            re.IGNORECASE,
        )
    )


def mentions_extraction(text: str) -> bool:
    """Whether ``text`` talks about pulling fields out of the input."""
    return bool(re.search(r"\b(?:extract\w*|pull\w* out|parse\w*|fields?)\b", text, re.I))


def _imperative(phrase: str) -> str:
    """Turn "classifies tickets" into "classify tickets" (the first verb only)."""
    words = phrase.strip().split(maxsplit=1)
    if not words:
        return phrase
    verb, rest = words[0], words[1] if len(words) > 1 else ""
    lowered = verb.lower()
    if lowered.endswith("ies") and len(lowered) > 4:
        verb = verb[:-3] + "y"
    elif lowered.endswith(("sses", "shes", "ches", "xes", "zzes")):
        verb = verb[:-2]
    elif lowered.endswith("s") and not lowered.endswith(("ss", "us", "is")) and len(lowered) > 3:
        verb = verb[:-1]
    return f"{verb} {rest}".strip()


def _unquote(text: str) -> str:
    text = text.strip()
    pairs = {'"': '"', "'": "'", "“": "”", "‘": "’", "`": "`"}
    if len(text) >= 2 and text[0] in pairs and text[-1] == pairs[text[0]]:
        return text[1:-1].strip()
    return text


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= 30 else flat[:29] + "…")
