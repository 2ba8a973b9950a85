"""Reading example files: JSONL, JSON arrays, CSV/TSV and folders saved by ``datasets``.

Parsing is separate from storing: a file is read whole into valid rows and rejected rows
(each with its location and reason) before a single row is written.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from store.errors import InputError, NotFoundError
from store.examples import (
    ChatMessage,
    NewExample,
    json_kind,
    prompt_response,
    validate_messages,
    validate_tags,
    validate_text,
)
from store.vocabulary import EXAMPLE_SPLITS, EXAMPLE_STATUSES, ExampleSplit

ChoiceT = TypeVar("ChoiceT", bound=str)

MAX_FILE_BYTES = 2 * 1024**3
"""Largest file read into memory; bigger ones are refused up front."""

_KNOWN_FIELDS = (
    "messages, prompt/response, prompt/completion, instruction/input/output or input/output"
)


@dataclass(frozen=True)
class RejectedRow:
    """A row that could not be used, where it is, and why."""

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


@dataclass
class ParsedFile:
    """The valid rows and the rejected rows of one file."""

    examples: list[NewExample] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)


def read_examples(path: Path) -> ParsedFile:
    """Read every row of an example file or ``save_to_disk`` folder; never raises for a bad row."""
    if not path.exists():
        raise NotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return _read_arrow_folder(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path}: file is too large ({size} bytes)")
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, data, delimiter="\t" if suffix == ".tsv" else ",")
    if suffix == ".json" and data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        return _read_json_array(path, data)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path, data)
    raise InputError(f"{path}: unknown file type {suffix or '(none)'!r}; use .jsonl, .json or .csv")


def record_to_example(record: object) -> NewExample:
    """Turn one decoded record of any supported shape into an example; raise InputError why not."""
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {json_kind(record)}")
    system = _optional_text(record, "system")
    if "messages" in record:
        messages = validate_messages(record["messages"])
        if system is not None and messages[0].role != "system":
            messages = (ChatMessage("system", system), *messages)
        example = NewExample(messages=messages)
    elif "instruction" in record and "output" in record:
        instruction = validate_text(_text_field(record, "instruction"), "instruction")
        extra = record.get("input")
        if extra is not None and not isinstance(extra, str):
            raise InputError(f"field 'input' must be a string, got {json_kind(extra)}")
        prompt = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
        example = prompt_response(prompt, _text_field(record, "output"), system)
    elif "prompt" in record and ("response" in record or "completion" in record):
        answer_field = "response" if "response" in record else "completion"
        prompt, answer = record["prompt"], record[answer_field]
        if isinstance(prompt, list) and isinstance(answer, list):
            # TRL's conversational prompt/completion: two lists of messages.
            example = NewExample(messages=validate_messages([*prompt, *answer]))
        else:
            example = prompt_response(
                _text_field(record, "prompt"), _text_field(record, answer_field), system
            )
    elif "input" in record and "output" in record:
        example = prompt_response(
            _text_field(record, "input"), _text_field(record, "output"), system
        )
    else:
        found = ", ".join(sorted(str(key) for key in record)[:6]) or "none"
        raise InputError(f"no known fields (expected {_KNOWN_FIELDS}; found {found})")
    tags = validate_tags(record["tags"]) if record.get("tags") is not None else ()
    for text in (*(message.content for message in example.messages), *tags):
        _check_encodable(text)
    split = _optional_choice(record, "split", EXAMPLE_SPLITS)
    status = _optional_choice(record, "status", EXAMPLE_STATUSES)
    return NewExample(messages=example.messages, tags=tags, split=split, status=status)


def parse_jsonl(text: str, origin: str | None = None) -> ParsedFile:
    """Every row of JSONL text; a row is rejected as ``ORIGIN:LINE`` (``line N`` with no origin)."""
    parsed = ParsedFile()
    for line_number, line in enumerate(text.split("\n"), start=1):
        _add_json_line(parsed, _location(origin, line_number), line)
    return parsed


def _read_jsonl(path: Path, data: bytes) -> ParsedFile:
    parsed = ParsedFile()
    if not data.removeprefix(b"\xef\xbb\xbf").strip():
        raise InputError(f"{path}: file is empty")
    for line_number, raw_line in enumerate(data.split(b"\n"), start=1):
        if line_number == 1:
            raw_line = raw_line.removeprefix(b"\xef\xbb\xbf")
        location = f"{path}:{line_number}"
        if not raw_line.strip():
            continue
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError as error:
            parsed.rejected.append(
                RejectedRow(location, f"not valid UTF-8 (byte {error.start + 1})")
            )
            continue
        _add_json_line(parsed, location, text)
    return parsed


def _add_json_line(parsed: ParsedFile, location: str, text: str) -> None:
    if not text.strip():
        return
    try:
        record = json.loads(text)
    # ValueError too: json refuses integers of more than 4,300 digits with a plain one.
    except (ValueError, RecursionError) as error:
        parsed.rejected.append(RejectedRow(location, f"not valid JSON ({_json_reason(error)})"))
        return
    _add_record(parsed, location, record)


def _read_json_array(path: Path, data: bytes) -> ParsedFile:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8") from error
    return parse_json_array(text, str(path))


def parse_json_array(text: str, origin: str | None = None) -> ParsedFile:
    """Every item of a JSON array in ``text``; InputError at the first syntax error, since the
    items after it cannot be trusted to line up."""
    parsed = ParsedFile()
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    while True:
        position = _skip_space(text, position)
        if position >= len(text):
            line = text.count("\n") + 1
            raise InputError(f"{_location(origin, line)}: the JSON array is not closed")
        if text[position] == "]":
            break
        line = text.count("\n", 0, position) + 1
        try:
            record, position = decoder.raw_decode(text, position)
        except (ValueError, RecursionError) as error:
            # Past a syntax error the rest of an array cannot be trusted to line up.
            reason = f"not valid JSON ({_json_reason(error)})"
            raise InputError(f"{_location(origin, line)}: {reason}") from error
        _add_record(parsed, _location(origin, line), record)
        position = _skip_space(text, position)
        if position < len(text) and text[position] == ",":
            position += 1
    after = _skip_space(text, position + 1)
    if after < len(text):
        line = text.count("\n", 0, after) + 1
        parsed.rejected.append(
            RejectedRow(_location(origin, line), "text after the end of the JSON array (not read)")
        )
    return parsed


def _read_csv(path: Path, data: bytes, *, delimiter: str) -> ParsedFile:
    if not data.removeprefix(b"\xef\xbb\xbf").strip():
        raise InputError(f"{path}: file is empty")
    # surrogateescape keeps the file readable past a bad byte; rows holding one are rejected.
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    return parse_csv(text, str(path), delimiter=delimiter)


def parse_csv(text: str, origin: str | None = None, *, delimiter: str = ",") -> ParsedFile:
    """Every row of CSV text under a prompt/response-style header; InputError for the header."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    parsed = ParsedFile()
    try:
        header = next(reader, [])
    except csv.Error as error:
        raise InputError(f"{_location(origin, 1)}: not valid CSV ({error})") from error
    columns = [column.strip().lower() for column in header]
    if not has_known_columns(columns):
        found = ", ".join(" ".join(column.split())[:40] for column in header[:10]) or "none"
        raise InputError(
            f"{_location(origin, 1)}: the header needs prompt/response, prompt/completion,"
            f" input/output or instruction/output columns (found: {found})"
        )
    line_number = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            # Past a broken quote or an over-long field the rows cannot be trusted to line up.
            parsed.rejected.append(
                RejectedRow(
                    _location(origin, line_number),
                    f"not valid CSV ({error}); the rest of the file was not read",
                )
            )
            break
        location = _location(origin, line_number)
        line_number = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            parsed.rejected.append(
                RejectedRow(location, f"expected {len(columns)} columns, got {len(row)}")
            )
            continue
        if any(_has_surrogates(cell) for cell in row):
            parsed.rejected.append(RejectedRow(location, "not valid UTF-8"))
            continue
        record: dict[str, Any] = {
            name: cell for name, cell in zip(columns, row, strict=True) if name != "tags"
        }
        if "tags" in columns:
            tag_cell = row[columns.index("tags")]
            record["tags"] = [tag for tag in tag_cell.split(",") if tag.strip()]
        _add_record(parsed, location, record)
    return parsed


def _read_arrow_folder(path: Path) -> ParsedFile:
    """Read a folder written by ``datasets.Dataset.save_to_disk`` (or a DatasetDict's)."""
    parsed = ParsedFile()
    dict_file = path / "dataset_dict.json"
    if dict_file.exists():
        splits = _json_file(_inside(path, dict_file)).get("splits", [])
        if not isinstance(splits, list) or not all(isinstance(name, str) for name in splits):
            raise InputError(f"{dict_file}: 'splits' must be a list of folder names")
        for split_name in splits:
            split: ExampleSplit = (
                "eval" if split_name in ("test", "validation", "eval", "valid") else "train"
            )
            part = _read_arrow_folder(_inside(path, path / split_name))
            parsed.examples.extend(
                NewExample(e.messages, e.tags, e.split or split, e.status) for e in part.examples
            )
            parsed.rejected.extend(part.rejected)
        return parsed
    state_file = path / "state.json"
    if not state_file.exists():
        raise InputError(
            f"{path}: a folder must be saved by datasets' save_to_disk (no state.json)"
        )
    data_files = _json_file(_inside(path, state_file)).get("_data_files", [])
    if (
        not data_files
        or not isinstance(data_files, list)
        or not all(
            isinstance(entry, dict) and isinstance(entry.get("filename"), str)
            for entry in data_files
        )
    ):
        raise InputError(f"{state_file}: '_data_files' must list {{\"filename\": ...}} objects")
    row_number = 0
    for entry in data_files:
        arrow_path = _inside(path, path / entry["filename"])
        if not arrow_path.is_file():
            raise InputError(f"{arrow_path}: the data file that {state_file.name} names is missing")
        for record in _arrow_records(arrow_path):
            row_number += 1
            _add_record(parsed, f"{path}:row {row_number}", record)
    return parsed


def _arrow_records(path: Path) -> list[dict[str, Any]]:
    """Every row of an Arrow stream file, as plain Python values."""
    # pyarrow reads the Arrow stream files directly, so the CLI never loads ``datasets``.
    import pyarrow as pa
    import pyarrow.ipc as ipc

    try:
        with ipc.open_stream(path.read_bytes()) as reader:
            return [record for batch in reader for record in batch.to_pylist()]
    except (OSError, ValueError, TypeError, NotImplementedError, pa.ArrowException) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(f"{path}: not a readable Arrow file ({reason})") from error


def _inside(folder: Path, child: Path) -> Path:
    """``child`` if it lies directly in ``folder``: neither a link out of it nor ``..`` away."""
    if child.resolve().parent != folder.resolve():
        raise InputError(f"{child}: leads outside {folder} (a link or '..'); not read")
    return child


def _json_file(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not readable JSON ({error})") from error
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected a JSON object")
    return value


def _add_record(parsed: ParsedFile, location: str, record: object) -> None:
    try:
        parsed.examples.append(record_to_example(record))
    except InputError as error:
        parsed.rejected.append(RejectedRow(location, error.message))


def has_known_columns(columns: Iterable[str]) -> bool:
    """Whether a CSV header (lower-cased names) has the columns of an example."""
    names = set(columns)
    return bool(
        {"prompt", "response"} <= names
        or {"prompt", "completion"} <= names
        or {"input", "output"} <= names
        or {"instruction", "output"} <= names
    )


def _text_field(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise InputError(f"field '{name}' must be a string, got {json_kind(value)}")
    return validate_text(value, f"field '{name}'")


def _optional_text(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _text_field(record, name)


def _optional_choice(
    record: dict[str, Any], name: str, choices: tuple[ChoiceT, ...]
) -> ChoiceT | None:
    value = record.get(name)
    if value is None:
        return None
    if value not in choices:
        raise InputError(f"field '{name}' must be one of {', '.join(choices)}, got {value!r}")
    return choices[choices.index(value)]


def _check_encodable(text: str) -> None:
    """Refuse text holding half of a UTF-16 pair (a JSON ``\\ud800`` escape): it is not text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise InputError(f"holds \\u{code:04x}, half of a UTF-16 surrogate pair") from None


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def _location(origin: str | None, line: int) -> str:
    return f"{origin}:{line}" if origin else f"line {line}"


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def _json_reason(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        # Some messages already end in "at" ("Unterminated string starting at").
        joiner = " " if error.msg.endswith(" at") else " at "
        return f"{error.msg}{joiner}column {error.colno}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error).split(":", 1)[0]
