"""Reading example files: JSONL, JSON arrays, CSV/TSV and folders saved by ``datasets``.

Parsing is separate from storing: a file is read whole into valid rows and rejected rows
(each with its location and reason) before a single row is written. The same readers take
unlabeled inputs (rows with no answer yet, for a model to propose one and a person to accept
it), and plain text with one input per line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from store.errors import InputError, NotFoundError
from store.examples import (
    ChatMessage,
    NewExample,
    json_kind,
    prompt_response,
    unlabeled_example,
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

_INPUT_FIELDS = ("prompt", "input", "text")
"""Where an unlabeled row's input comes from: the first of these a record has."""

_ANSWER_FIELDS = ("response", "completion", "output")
"""Fields that hold an answer; an unlabeled row must not fill any of them."""


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
    data = _file_bytes(path)
    if data is None:
        return _read_arrow_folder(path, EXAMPLE_ROWS)
    parsed = _read_structured(path, data, EXAMPLE_ROWS)
    if parsed is None:
        raise _unknown_file_type(path, ".jsonl, .json or .csv")
    return parsed


def read_unlabeled(path: Path) -> ParsedFile:
    """Read every input of an unlabeled file: ``.txt`` (one input per non-blank line), JSONL or
    a JSON array with a prompt, input or text field, CSV/TSV with such a column, or a
    ``save_to_disk`` folder; never raises for a bad row."""
    data = _file_bytes(path)
    if data is None:
        return _read_arrow_folder(path, UNLABELED_ROWS)
    if path.suffix.lower() == ".txt":
        if not data.removeprefix(b"\xef\xbb\xbf").strip():
            raise InputError(f"{path}: file is empty")
        # surrogateescape keeps the file readable past a bad byte; lines holding one are rejected.
        text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
        return parse_unlabeled_text(text, str(path))
    parsed = _read_structured(path, data, UNLABELED_ROWS)
    if parsed is None:
        raise _unknown_file_type(path, ".txt, .jsonl, .json or .csv")
    return parsed


def _file_bytes(path: Path) -> bytes | None:
    """The whole file at ``path``, or None for a folder; refuses a missing or huge file."""
    if not path.exists():
        raise NotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return None
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path}: file is too large ({size} bytes)")
    return path.read_bytes()


def _unknown_file_type(path: Path, accepted: str) -> InputError:
    return InputError(
        f"{path}: unknown file type {path.suffix.lower() or '(none)'!r}; use {accepted}"
    )


def _read_structured(path: Path, data: bytes, shape: RowShape) -> ParsedFile | None:
    """The rows of a CSV, TSV, JSON or JSONL file, or None for any other file type."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, data, delimiter="\t" if suffix == ".tsv" else ",", shape=shape)
    if suffix == ".json" and data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        return _read_json_array(path, data, shape)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _read_jsonl(path, data, shape)
    return None


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
    return _with_row_fields(example, record)


def record_to_unlabeled(record: object) -> NewExample:
    """Turn one decoded record into an input with no answer yet; raise InputError why not.

    The input is the first of ``prompt``, ``input`` and ``text`` present (or an Alpaca
    ``instruction``, or a conversation ending with a user turn). A record that holds an answer
    is refused, not stripped of it: it is an example, imported without marking it unlabeled.
    """
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {json_kind(record)}")
    answer_field = next((name for name in _ANSWER_FIELDS if _present(record.get(name))), None)
    if answer_field is not None:
        raise InputError(
            f"has an answer (field {answer_field!r}); import answered rows as examples"
        )
    system = _optional_text(record, "system")
    if "messages" in record:
        example = NewExample(messages=_unanswered_messages(record["messages"], system))
    elif "instruction" in record:
        instruction = validate_text(_text_field(record, "instruction"), "instruction")
        extra = _optional_text(record, "input")
        prompt = f"{instruction}\n\n{extra}" if extra else instruction
        example = unlabeled_example(prompt, system)
    else:
        name = next((name for name in _INPUT_FIELDS if name in record), None)
        if name is None:
            found = ", ".join(sorted(str(key) for key in record)[:6]) or "none"
            raise InputError(f"no prompt/input/text field (found {found})")
        example = unlabeled_example(_text_field(record, name), system)
    if record.get("status") == "approved":
        raise InputError("status 'approved' needs an answer; an unlabeled row comes in pending")
    return _with_row_fields(example, record)


def _with_row_fields(example: NewExample, record: dict[str, Any]) -> NewExample:
    """``example`` with the record's own tags, split and status, once its text is checked."""
    tags = validate_tags(record["tags"]) if record.get("tags") is not None else ()
    for text in (*(message.content for message in example.messages), *tags):
        _check_encodable(text)
    split = _optional_choice(record, "split", EXAMPLE_SPLITS)
    status = _optional_choice(record, "status", EXAMPLE_STATUSES)
    return NewExample(messages=example.messages, tags=tags, split=split, status=status)


def _unanswered_messages(raw: object, system: str | None) -> tuple[ChatMessage, ...]:
    """A chat-format conversation that ends with the user's turn, checked by the store's rules."""
    last = raw[-1] if isinstance(raw, list) and raw else None
    if isinstance(last, dict) and last.get("role") == "assistant":
        raise InputError("has an answer (the last turn is the assistant's)")
    # The store checks conversations that end with an answer; a placeholder answer lets the
    # same rules (roles, contents, where the system turn goes) check this one.
    placeholder = {"role": "assistant", "content": "-"}
    checked = validate_messages([*raw, placeholder] if isinstance(raw, list) and raw else raw)
    messages = checked[:-1]
    if system is not None and messages[0].role != "system":
        messages = (ChatMessage("system", system), *messages)
    return messages


def has_known_columns(columns: Iterable[str]) -> bool:
    """Whether a CSV header (lower-cased names) has the columns of an example."""
    names = set(columns)
    return bool(
        {"prompt", "response"} <= names
        or {"prompt", "completion"} <= names
        or {"input", "output"} <= names
        or {"instruction", "output"} <= names
    )


def has_input_column(columns: Iterable[str]) -> bool:
    """Whether a CSV header (lower-cased names) has a column an unlabeled input can come from."""
    return not set(columns).isdisjoint((*_INPUT_FIELDS, "instruction"))


@dataclass(frozen=True)
class RowShape:
    """What each row of a file holds: a whole example, or an input still waiting for its answer."""

    record_to_example: Callable[[object], NewExample]
    """Turns one decoded record into a row to store; raises InputError why not."""
    columns_fit: Callable[[Iterable[str]], bool]
    """Whether a CSV header (lower-cased names) has the columns such a row needs."""
    columns_needed: str
    """Those columns, as the header's error names them."""


EXAMPLE_ROWS = RowShape(
    record_to_example,
    has_known_columns,
    "prompt/response, prompt/completion, input/output or instruction/output columns",
)
"""Rows with their answers: what every import takes unless told the rows are unlabeled."""

UNLABELED_ROWS = RowShape(
    record_to_unlabeled, has_input_column, "a prompt, input, text or instruction column"
)
"""Inputs with no answer yet, stored pending until a person labels them."""


def parse_unlabeled_text(text: str, origin: str | None = None) -> ParsedFile:
    """One unlabeled input per non-blank line of ``text`` (a ``.txt`` file, or messages pasted
    in Chat); a line is rejected as ``ORIGIN:LINE`` (``line N`` with no origin)."""
    parsed = ParsedFile()
    for line_number, line in enumerate(text.split("\n"), start=1):
        content = line.strip()
        if not content:
            continue
        location = _location(origin, line_number)
        if _has_surrogates(content):
            parsed.rejected.append(RejectedRow(location, "not valid UTF-8"))
            continue
        try:
            _check_encodable(content)
            parsed.examples.append(unlabeled_example(content))
        except InputError as error:
            parsed.rejected.append(RejectedRow(location, error.message))
    return parsed


def parse_jsonl(
    text: str, origin: str | None = None, *, shape: RowShape = EXAMPLE_ROWS
) -> ParsedFile:
    """Every row of JSONL text; a row is rejected as ``ORIGIN:LINE`` (``line N`` with no origin)."""
    parsed = ParsedFile()
    for line_number, line in enumerate(text.split("\n"), start=1):
        _add_json_line(parsed, _location(origin, line_number), line, shape)
    return parsed


def _read_jsonl(path: Path, data: bytes, shape: RowShape) -> ParsedFile:
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
        _add_json_line(parsed, location, text, shape)
    return parsed


def _add_json_line(parsed: ParsedFile, location: str, text: str, shape: RowShape) -> None:
    if not text.strip():
        return
    try:
        record = json.loads(text)
    # ValueError too: json refuses integers of more than 4,300 digits with a plain one.
    except (ValueError, RecursionError) as error:
        parsed.rejected.append(RejectedRow(location, f"not valid JSON ({_json_reason(error)})"))
        return
    _add_record(parsed, location, record, shape)


def _read_json_array(path: Path, data: bytes, shape: RowShape) -> ParsedFile:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8") from error
    return parse_json_array(text, str(path), shape=shape)


def parse_json_array(
    text: str, origin: str | None = None, *, shape: RowShape = EXAMPLE_ROWS
) -> ParsedFile:
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
        _add_record(parsed, _location(origin, line), record, shape)
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


def _read_csv(path: Path, data: bytes, *, delimiter: str, shape: RowShape) -> ParsedFile:
    if not data.removeprefix(b"\xef\xbb\xbf").strip():
        raise InputError(f"{path}: file is empty")
    # surrogateescape keeps the file readable past a bad byte; rows holding one are rejected.
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    return parse_csv(text, str(path), delimiter=delimiter, shape=shape)


def parse_csv(
    text: str,
    origin: str | None = None,
    *,
    delimiter: str = ",",
    shape: RowShape = EXAMPLE_ROWS,
) -> ParsedFile:
    """Every row of CSV text under a prompt/response-style header (a prompt, input or text
    column for unlabeled rows); InputError for the header."""
    shape = shape
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    parsed = ParsedFile()
    try:
        header = next(reader, [])
    except csv.Error as error:
        raise InputError(f"{_location(origin, 1)}: not valid CSV ({error})") from error
    columns = [column.strip().lower() for column in header]
    if not shape.columns_fit(columns):
        found = ", ".join(" ".join(column.split())[:40] for column in header[:10]) or "none"
        raise InputError(
            f"{_location(origin, 1)}: the header needs {shape.columns_needed} (found: {found})"
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
        _add_record(parsed, location, record, shape)
    return parsed


def _read_arrow_folder(path: Path, shape: RowShape) -> ParsedFile:
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
            part = _read_arrow_folder(_inside(path, path / split_name), shape)
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
            _add_record(parsed, f"{path}:row {row_number}", record, shape)
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


def _add_record(parsed: ParsedFile, location: str, record: object, shape: RowShape) -> None:
    try:
        parsed.examples.append(shape.record_to_example(record))
    except InputError as error:
        parsed.rejected.append(RejectedRow(location, error.message))


def _text_field(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise InputError(f"field '{name}' must be a string, got {json_kind(value)}")
    return validate_text(value, f"field '{name}'")


def _present(value: object) -> bool:
    """Whether a field holds something: neither missing, null nor blank text."""
    return value is not None and not (isinstance(value, str) and not value.strip())


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
