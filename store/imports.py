"""Reading example files: JSONL, JSON arrays, CSV/TSV and folders saved by ``datasets``.

Parsing is separate from storing. A file is read as a stream of rows, each either valid or
rejected (with its location and reason), so a million-row file is never held at once: the
store takes the valid rows as they come (``examples import`` in one transaction, so a file
goes in whole or not at all). ``read_examples`` collects the stream for callers that want the
rows in hand before they write. The same readers take unlabeled inputs (rows with no answer
yet, for a model to propose one and a person to accept it), and plain text with one input per
line.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

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
LineT = TypeVar("LineT", str, bytes)

READ_CHUNK = 1024 * 1024
"""Bytes a JSON array is read by: its items are decoded as the text of them arrives."""
_BOM = b"\xef\xbb\xbf"
_JSON_SPACE = " \t\r\n"
_LONGEST_TOKEN = 16
"""More characters than a JSON literal (``-Infinity``) that a chunk's end may cut in two."""

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


ParsedRow = NewExample | RejectedRow
"""One row of a file as its stream gives it: valid, or rejected with where and why."""


def read_examples(path: Path) -> ParsedFile:
    """Read every row of an example file or ``save_to_disk`` folder; never raises for a bad row."""
    return collect_rows(stream_examples(path))


def read_unlabeled(path: Path) -> ParsedFile:
    """Read every input of an unlabeled file (see ``stream_unlabeled``); never raises for a
    bad row."""
    return collect_rows(stream_unlabeled(path))


def collect_rows(rows: Iterable[ParsedRow]) -> ParsedFile:
    """The rows of a stream, the valid and the rejected apart."""
    parsed = ParsedFile()
    for row in rows:
        if isinstance(row, RejectedRow):
            parsed.rejected.append(row)
        else:
            parsed.examples.append(row)
    return parsed


def stream_examples(path: Path) -> Iterator[ParsedRow]:
    """Every row of an example file or ``save_to_disk`` folder, read as it is used. A file
    that cannot be read at all raises InputError, at once or when the stream reaches why
    (an empty file, a JSON array broken before its end); a bad row never does."""
    if _is_folder(path):
        return _arrow_folder_rows(path, EXAMPLE_ROWS)
    rows = _structured_rows(path, EXAMPLE_ROWS)
    if rows is None:
        raise _unknown_file_type(path, ".jsonl, .json or .csv")
    return rows


def stream_unlabeled(path: Path) -> Iterator[ParsedRow]:
    """Every input of an unlabeled file, read as it is used: ``.txt`` (one input per non-blank
    line), JSONL or a JSON array with a prompt, input or text field, CSV/TSV with such a
    column, or a ``save_to_disk`` folder. Raises as ``stream_examples`` does."""
    if _is_folder(path):
        return _arrow_folder_rows(path, UNLABELED_ROWS)
    if path.suffix.lower() == ".txt":
        return _text_file_rows(path)
    rows = _structured_rows(path, UNLABELED_ROWS)
    if rows is None:
        raise _unknown_file_type(path, ".txt, .jsonl, .json or .csv")
    return rows


def _is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder (else a file); refuses a missing path."""
    if not path.exists():
        raise NotFoundError(f"{path}: no such file or folder")
    return path.is_dir()


def _unknown_file_type(path: Path, accepted: str) -> InputError:
    return InputError(
        f"{path}: unknown file type {path.suffix.lower() or '(none)'!r}; use {accepted}"
    )


def _structured_rows(path: Path, shape: RowShape) -> Iterator[ParsedRow] | None:
    """The rows of a CSV, TSV, JSON or JSONL file, or None for any other file type."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _csv_file_rows(path, delimiter="\t" if suffix == ".tsv" else ",", shape=shape)
    if suffix == ".json" and _first_byte(path) == b"[":
        return _json_array_file_rows(path, shape)
    if suffix in (".jsonl", ".ndjson", ".json"):
        return _jsonl_file_rows(path, shape)
    return None


def _first_byte(path: Path) -> bytes:
    """The file's first byte that is not a byte-order mark or JSON whitespace (b"" if none)."""
    with path.open("rb") as handle:
        start = handle.read(len(_BOM))
        chunk = start.removeprefix(_BOM)
        while True:
            stripped = chunk.lstrip(_JSON_SPACE.encode())
            if stripped:
                return stripped[:1]
            chunk = handle.read(READ_CHUNK)
            if not chunk:
                return b""


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
    lines = ((_location(origin, number), line) for number, line in _numbered(text.split("\n")))
    return collect_rows(_unlabeled_line_rows(lines))


def _text_file_rows(path: Path) -> Iterator[ParsedRow]:
    seen = False
    for location, line in _file_lines(path):
        # surrogateescape keeps the file readable past a bad byte; lines holding one are
        # rejected.
        text = line.decode("utf-8", errors="surrogateescape")
        seen = seen or bool(text.strip())
        yield from _unlabeled_line_rows([(location, text)])
    if not seen:
        raise InputError(f"{path}: file is empty")


def _unlabeled_line_rows(lines: Iterable[tuple[str, str]]) -> Iterator[ParsedRow]:
    for location, line in lines:
        content = line.strip()
        if not content:
            continue
        if _has_surrogates(content):
            yield RejectedRow(location, "not valid UTF-8")
            continue
        try:
            _check_encodable(content)
            yield unlabeled_example(content)
        except InputError as error:
            yield RejectedRow(location, error.message)


def parse_jsonl(
    text: str, origin: str | None = None, *, shape: RowShape = EXAMPLE_ROWS
) -> ParsedFile:
    """Every row of JSONL text; a row is rejected as ``ORIGIN:LINE`` (``line N`` with no origin)."""
    rows = (
        _json_line_row(_location(origin, number), line, shape)
        for number, line in _numbered(text.split("\n"))
    )
    return collect_rows(row for row in rows if row is not None)


def _jsonl_file_rows(path: Path, shape: RowShape) -> Iterator[ParsedRow]:
    seen = False
    for location, raw_line in _file_lines(path):
        if not raw_line.strip():
            continue
        seen = True
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError as error:
            yield RejectedRow(location, f"not valid UTF-8 (byte {error.start + 1})")
            continue
        row = _json_line_row(location, text, shape)
        if row is not None:
            yield row
    if not seen:
        raise InputError(f"{path}: file is empty")


def _file_lines(path: Path) -> Iterator[tuple[str, bytes]]:
    """Each line of a file as bytes (without its newline, a first byte-order mark dropped),
    with its ``FILE:LINE``: lines end at ``\n`` alone, as the rows of a JSONL file do."""
    with path.open("rb") as handle:
        for number, line in _numbered(handle):
            if number == 1:
                line = line.removeprefix(_BOM)
            yield f"{path}:{number}", line.removesuffix(b"\n")


def _json_line_row(location: str, text: str, shape: RowShape) -> ParsedRow | None:
    """The row one line of JSONL holds; None for a blank line."""
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    # ValueError too: json refuses integers of more than 4,300 digits with a plain one.
    except (ValueError, RecursionError) as error:
        return RejectedRow(location, f"not valid JSON ({_json_reason(error)})")
    return _record_row(location, record, shape)


def _json_array_file_rows(path: Path, shape: RowShape) -> Iterator[ParsedRow]:
    with path.open("rb") as handle:
        yield from _json_array_rows(_decoded_chunks(path, handle), str(path), shape)


def _decoded_chunks(path: Path, handle: IO[bytes]) -> Iterator[str]:
    """The text of a UTF-8 file (a first byte-order mark dropped) a chunk at a time; a byte
    that is not UTF-8 is an InputError naming its line."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    lines_before = 0
    while True:
        chunk = handle.read(READ_CHUNK)
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as error:
            # The decoder holds at most a few bytes of a character back from the last chunk.
            line = lines_before + chunk[: max(0, error.start)].count(b"\n") + 1
            raise InputError(f"{path}:{line}: not valid UTF-8") from error
        lines_before += chunk.count(b"\n")
        if text:
            yield text
        if not chunk:
            return


def parse_json_array(
    text: str, origin: str | None = None, *, shape: RowShape = EXAMPLE_ROWS
) -> ParsedFile:
    """Every item of a JSON array in ``text``; InputError at the first syntax error, since the
    items after it cannot be trusted to line up."""
    return collect_rows(_json_array_rows(iter([text]), origin, shape))


def _json_array_rows(
    chunks: Iterator[str], origin: str | None, shape: RowShape
) -> Iterator[ParsedRow]:
    """The items of the JSON array whose text ``chunks`` holds, each decoded once the text of
    it has arrived; InputError at the first syntax error."""
    decoder = json.JSONDecoder()
    text = ""
    position = 0
    line = 1
    at_end = False

    def more() -> bool:
        """Read the next chunk, keeping only the text not yet decoded; False at the end."""
        nonlocal text, position, at_end
        chunk = next(chunks, None)
        if chunk is None:
            at_end = True
            return False
        text = text[position:] + chunk
        position = 0
        return True

    def skip_space() -> None:
        nonlocal position, line
        while True:
            start = position
            while position < len(text) and text[position] in _JSON_SPACE:
                position += 1
            line += text.count("\n", start, position)
            if position < len(text) or not more():
                return

    while "[" not in text and more():
        pass
    opening = text.index("[") + 1
    line += text.count("\n", 0, opening)
    position = opening
    while True:
        skip_space()
        if position >= len(text):
            raise InputError(f"{_location(origin, line)}: the JSON array is not closed")
        if text[position] == "]":
            break
        while True:
            try:
                record, end = decoder.raw_decode(text, position)
            except (ValueError, RecursionError) as error:
                # An item cut off by the end of the text read so far goes on in the next
                # chunk; any other error is a syntax error, past which the rest of an array
                # cannot be trusted to line up.
                if _cut_off(error, len(text)) and not at_end and more():
                    continue
                reason = f"not valid JSON ({_json_reason(error)})"
                raise InputError(f"{_location(origin, line)}: {reason}") from error
            # A number at the very end of the text read so far may go on in the next chunk.
            if end < len(text) or at_end or not more():
                break
        yield _record_row(_location(origin, line), record, shape)
        line += text.count("\n", position, end)
        position = end
        skip_space()
        if position < len(text) and text[position] == ",":
            position += 1
    position += 1
    skip_space()
    if position < len(text):
        yield RejectedRow(
            _location(origin, line), "text after the end of the JSON array (not read)"
        )


def _cut_off(error: Exception, text_length: int) -> bool:
    """Whether a JSON decoding error may only mean the text ended too soon: it is about the
    last few characters (a ``tr`` of ``true``, a ``-`` of ``-Infinity``) or a string that was
    not closed."""
    if not isinstance(error, json.JSONDecodeError):
        return False
    return error.pos >= text_length - _LONGEST_TOKEN or error.msg.startswith("Unterminated string")


def _csv_file_rows(path: Path, *, delimiter: str, shape: RowShape) -> Iterator[ParsedRow]:
    if not _first_byte(path):
        raise InputError(f"{path}: file is empty")
    # surrogateescape keeps the file readable past a bad byte; rows holding one are rejected.
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        yield from _csv_rows(handle, str(path), delimiter=delimiter, shape=shape)


def parse_csv(
    text: str,
    origin: str | None = None,
    *,
    delimiter: str = ",",
    shape: RowShape = EXAMPLE_ROWS,
) -> ParsedFile:
    """Every row of CSV text under a prompt/response-style header (a prompt, input or text
    column for unlabeled rows); InputError for the header."""
    rows = _csv_rows(io.StringIO(text, newline=""), origin, delimiter=delimiter, shape=shape)
    return collect_rows(rows)


def _csv_rows(
    source: Iterable[str], origin: str | None, *, delimiter: str, shape: RowShape
) -> Iterator[ParsedRow]:
    reader = csv.reader(source, delimiter=delimiter)
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
            yield RejectedRow(
                _location(origin, line_number),
                f"not valid CSV ({error}); the rest of the file was not read",
            )
            break
        location = _location(origin, line_number)
        line_number = reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            yield RejectedRow(location, f"expected {len(columns)} columns, got {len(row)}")
            continue
        if any(_has_surrogates(cell) for cell in row):
            yield RejectedRow(location, "not valid UTF-8")
            continue
        record: dict[str, Any] = {
            name: cell for name, cell in zip(columns, row, strict=True) if name != "tags"
        }
        if "tags" in columns:
            tag_cell = row[columns.index("tags")]
            record["tags"] = [tag for tag in tag_cell.split(",") if tag.strip()]
        yield _record_row(location, record, shape)


def _arrow_folder_rows(path: Path, shape: RowShape) -> Iterator[ParsedRow]:
    """The rows of a folder written by ``datasets.Dataset.save_to_disk`` (or a DatasetDict's)."""
    dict_file = path / "dataset_dict.json"
    if dict_file.exists():
        splits = _json_file(_inside(path, dict_file)).get("splits", [])
        if not isinstance(splits, list) or not all(isinstance(name, str) for name in splits):
            raise InputError(f"{dict_file}: 'splits' must be a list of folder names")
        for split_name in splits:
            split: ExampleSplit = (
                "eval" if split_name in ("test", "validation", "eval", "valid") else "train"
            )
            for row in _arrow_folder_rows(_inside(path, path / split_name), shape):
                if isinstance(row, NewExample):
                    row = NewExample(row.messages, row.tags, row.split or split, row.status)
                yield row
        return
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
            yield _record_row(f"{path}:row {row_number}", record, shape)


def _arrow_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every row of an Arrow stream file, as plain Python values, a record batch at a time."""
    # pyarrow reads the Arrow stream files directly, so the CLI never loads ``datasets``.
    import pyarrow as pa
    import pyarrow.ipc as ipc

    try:
        with pa.OSFile(str(path)) as source, ipc.open_stream(source) as reader:
            for batch in reader:
                yield from batch.to_pylist()
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


def _record_row(location: str, record: object, shape: RowShape) -> ParsedRow:
    try:
        return shape.record_to_example(record)
    except InputError as error:
        return RejectedRow(location, error.message)


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


def _numbered(lines: Iterable[LineT]) -> Iterator[tuple[int, LineT]]:
    return enumerate(lines, start=1)


def _json_reason(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        # Some messages already end in "at" ("Unterminated string starting at").
        joiner = " " if error.msg.endswith(" at") else " at "
        return f"{error.msg}{joiner}column {error.colno}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error).split(":", 1)[0]
