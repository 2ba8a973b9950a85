"""Every import format, and a corpus of bad files with the exact location and reason expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store import imports
from store.errors import InputError, NotFoundError
from store.examples import ChatMessage
from store.imports import (
    UNLABELED_ROWS,
    parse_json_array,
    parse_jsonl,
    parse_unlabeled_text,
    read_examples,
    read_unlabeled,
    stream_examples,
)

USER_ASSISTANT = (ChatMessage("user", "2+2?"), ChatMessage("assistant", "4"))


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "chat.jsonl",
            '{"messages": [{"role": "user", "content": "2+2?"},'
            ' {"role": "assistant", "content": "4"}]}\n',
        ),
        ("pr.jsonl", '{"prompt": "2+2?", "response": "4"}\n'),
        ("pc.jsonl", '{"prompt": "2+2?", "completion": "4"}\n'),
        (
            "conversational.jsonl",
            '{"prompt": [{"role": "user", "content": "2+2?"}],'
            ' "completion": [{"role": "assistant", "content": "4"}]}\n',
        ),
        ("alpaca.jsonl", '{"instruction": "2+2?", "input": "", "output": "4"}\n'),
        ("array.json", '[\n  {"prompt": "2+2?", "response": "4"}\n]\n'),
        ("pr.csv", 'prompt,response\n"2+2?",4\n'),
        ("io.csv", "input,output\n2+2?,4\n"),
        ("io.tsv", "input\toutput\n2+2?\t4\n"),
        ("bom.jsonl", '\ufeff{"prompt": "2+2?", "response": "4"}\n'),
        ("crlf.jsonl", '{"prompt": "2+2?", "response": "4"}\r\n\r\n'),
    ],
)
def test_each_format_reads_one_example(tmp_path: Path, name: str, content: str) -> None:
    parsed = read_examples(write(tmp_path, name, content))
    assert parsed.rejected == []
    assert [e.messages for e in parsed.examples] == [USER_ASSISTANT]


def test_alpaca_input_joins_instruction_and_system_is_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.jsonl",
        '{"instruction": "Add", "input": "2 2", "output": "4", "system": "Be brief."}\n',
    )
    (example,) = read_examples(path).examples
    assert example.messages == (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Add\n\n2 2"),
        ChatMessage("assistant", "4"),
    )


def test_csv_quoted_multiline_cells_and_tags(tmp_path: Path) -> None:
    path = write(
        tmp_path, "m.csv", 'prompt,response,tags\n"line one\nline two","ok","a,b"\nbad,row\n"x"\n'
    )
    parsed = read_examples(path)
    assert parsed.examples[0].messages[0].content == "line one\nline two"
    assert parsed.examples[0].tags == ("a", "b")
    # The row after a two-line record starts on line 4, and the next on line 5.
    assert [str(r) for r in parsed.rejected] == [
        f"{path}:4: expected 3 columns, got 2",
        f"{path}:5: expected 3 columns, got 1",
    ]


def test_datasets_save_to_disk_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = {"prompt": ["2+2?", "3+3?", ""], "response": ["4", "6", "none"]}
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    parsed = read_examples(tmp_path / "ds")
    assert [e.messages[-1].content for e in parsed.examples] == ["4", "6"]
    assert [str(r) for r in parsed.rejected] == [
        f"{tmp_path / 'ds'}:row 3: field 'prompt' is empty"
    ]
    dataset_dict = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"prompt": ["a"], "response": ["b"]}),
            "test": datasets.Dataset.from_dict({"prompt": ["c"], "response": ["d"]}),
        }
    )
    dataset_dict.save_to_disk(str(tmp_path / "dd"))
    splits = {e.messages[0].content: e.split for e in read_examples(tmp_path / "dd").examples}
    assert splits == {"a": "train", "c": "eval"}


GOOD = '{"prompt": "q", "response": "a"}'

# (file name, content, expected "LINE: reason" lines); every file also holds good rows, which
# must all be kept.
BAD_ROWS: list[tuple[str, bytes, list[str]]] = [
    (
        "not_json.jsonl",
        f"{GOOD}\nnot json\n".encode(),
        ["2: not valid JSON (Expecting value at column 1)"],
    ),
    (
        "truncated.jsonl",
        f'{GOOD}\n{{"prompt": "q", "resp\n'.encode(),
        ["2: not valid JSON (Unterminated string starting at column 17)"],
    ),
    (
        "bad_utf8.jsonl",
        b'{"prompt": "q\xff", "response": "a"}\n' + GOOD.encode(),
        ["1: not valid UTF-8 (byte 14)"],
    ),
    ("array_row.jsonl", f"{GOOD}\n[1, 2]\n".encode(), ["2: expected a JSON object, got an array"]),
    (
        "unknown_fields.jsonl",
        f'{GOOD}\n{{"question": "q", "answer": "a"}}\n'.encode(),
        [
            "2: no known fields (expected messages, prompt/response, prompt/completion, instruction/input/output or input/output; found answer, question)"
        ],
    ),
    (
        "empty_response.jsonl",
        f'{GOOD}\n{{"prompt": "q", "response": "   "}}\n'.encode(),
        ["2: field 'response' is empty"],
    ),
    (
        "number_prompt.jsonl",
        f'{GOOD}\n{{"prompt": 7, "response": "a"}}\n'.encode(),
        ["2: field 'prompt' must be a string, got a number"],
    ),
    (
        "no_assistant.jsonl",
        f'{GOOD}\n{{"messages": [{{"role": "user", "content": "q"}}]}}\n'.encode(),
        ["2: no assistant turn"],
    ),
    (
        "unknown_role.jsonl",
        f'{GOOD}\n{{"messages": [{{"role": "robot", "content": "q"}}, {{"role": "assistant", "content": "a"}}]}}\n'.encode(),
        ["2: messages[0]: unknown role 'robot' (expected system, user or assistant)"],
    ),
    (
        "ends_with_user.jsonl",
        f'{GOOD}\n{{"messages": [{{"role": "user", "content": "q"}}, {{"role": "assistant", "content": "a"}}, {{"role": "user", "content": "q2"}}]}}\n'.encode(),
        ["2: the last turn must be the assistant's (it is what the model learns)"],
    ),
    (
        "messages_not_list.jsonl",
        f'{GOOD}\n{{"messages": "hi"}}\n'.encode(),
        ["2: 'messages' must be a list, got a string"],
    ),
    (
        "late_system.jsonl",
        f'{GOOD}\n{{"messages": [{{"role": "user", "content": "q"}}, {{"role": "system", "content": "s"}}, {{"role": "assistant", "content": "a"}}]}}\n'.encode(),
        ["2: a system message may only come first"],
    ),
    (
        "missing_content.jsonl",
        f'{GOOD}\n{{"messages": [{{"role": "user"}}, {{"role": "assistant", "content": "a"}}]}}\n'.encode(),
        ["2: messages[0]: 'content' is missing or not a string"],
    ),
    (
        "huge_field.jsonl",
        (GOOD + "\n" + json.dumps({"prompt": "x" * 100_001, "response": "a"}) + "\n").encode(),
        ["2: field 'prompt' is too long (100001 characters, at most 100000)"],
    ),
    (
        "nul.jsonl",
        f'{GOOD}\n{{"prompt": "a\\u0000b", "response": "a"}}\n'.encode(),
        ["2: field 'prompt' contains a NUL character"],
    ),
    (
        "deep.jsonl",
        (GOOD + "\n" + "[" * 100_000 + "\n").encode(),
        ["2: not valid JSON (nested too deeply)"],
    ),
    (
        "bad_split.jsonl",
        f'{GOOD}\n{{"prompt": "q2", "response": "a", "split": "test"}}\n'.encode(),
        ["2: field 'split' must be one of train, eval, got 'test'"],
    ),
    (
        "bad_tags.jsonl",
        f'{GOOD}\n{{"prompt": "q2", "response": "a", "tags": "x"}}\n'.encode(),
        ["2: 'tags' must be a list of non-empty strings"],
    ),
    (
        "ragged.csv",
        b"prompt,response\nq,a\nonly one\nq,a,extra\n",
        ["3: expected 2 columns, got 1", "4: expected 2 columns, got 3"],
    ),
    ("bad_utf8.csv", b"prompt,response\nq,a\nq\xff,a\n", ["3: not valid UTF-8"]),
    ("empty_cell.csv", b"input,output\nq,a\nq2,\n", ["3: field 'output' is empty"]),
    (
        "array_item.json",
        f'[\n  {GOOD},\n  "text",\n  {{"prompt": ""}}\n]\n'.encode(),
        [
            "3: expected a JSON object, got a string",
            "4: no known fields (expected messages, prompt/response, prompt/completion, instruction/input/output or input/output; found prompt)",
        ],
    ),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_ROWS, ids=[r[0] for r in BAD_ROWS])
def test_bad_rows_name_their_line_and_reason(
    tmp_path: Path, name: str, content: bytes, expected: list[str]
) -> None:
    path = write(tmp_path, name, content)
    parsed = read_examples(path)
    assert [str(r) for r in parsed.rejected] == [f"{path}:{line}" for line in expected]
    assert len(parsed.examples) >= 1, "the valid rows are kept"


BAD_FILES: list[tuple[str, bytes, str]] = [
    ("empty.jsonl", b"", "file is empty"),
    ("blank.csv", b"\n\n", "file is empty"),
    ("wrong_header.csv", b"question,answer\nq,a\n", "1: the header needs prompt/response"),
    ("binary.bin", b"\x00\x01\x02", "unknown file type '.bin'"),
    (
        "broken_array.json",
        b'[\n{"prompt": "q", "response": "a"},\n{"prompt": \n',
        "3: not valid JSON",
    ),
    (
        "unclosed_array.json",
        b'[\n{"prompt": "q", "response": "a"}\n',
        "the JSON array is not closed",
    ),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES, ids=[r[0] for r in BAD_FILES])
def test_unusable_files_raise_one_clear_error(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(InputError) as caught:
        read_examples(path)
    assert caught.value.message.startswith(str(path))
    assert expected in caught.value.message
    assert "\n" not in caught.value.message


def test_missing_file_and_foreign_folder(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        read_examples(tmp_path / "missing.jsonl")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match=r"no state\.json"):
        read_examples(tmp_path / "folder")


USER_ONLY = (ChatMessage("user", "My card was charged twice"),)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("inputs.txt", "My card was charged twice\n"),
        ("padded.txt", "\ufeff\n   My card was charged twice  \r\n\r\n"),
        ("prompt.jsonl", '{"prompt": "My card was charged twice"}\n'),
        ("input.jsonl", '{"input": "My card was charged twice", "id": 7}\n'),
        ("text.jsonl", '{"text": "My card was charged twice", "label": ""}\n'),
        ("first_wins.jsonl", '{"text": "other", "prompt": "My card was charged twice"}\n'),
        ("empty_answer.jsonl", '{"prompt": "My card was charged twice", "response": ""}\n'),
        (
            "chat.jsonl",
            '{"messages": [{"role": "user", "content": "My card was charged twice"}]}\n',
        ),
        ("array.json", '[\n  {"text": "My card was charged twice"}\n]\n'),
        ("text.csv", 'id,text\n1,"My card was charged twice"\n'),
        ("blank_answers.csv", "prompt,response\nMy card was charged twice,\n"),
        ("text.tsv", "ticket\ttext\nT-1\tMy card was charged twice\n"),
    ],
)
def test_each_unlabeled_format_reads_one_input(tmp_path: Path, name: str, content: str) -> None:
    parsed = read_unlabeled(write(tmp_path, name, content))
    assert parsed.rejected == []
    assert [e.messages for e in parsed.examples] == [USER_ONLY]


def test_unlabeled_rows_keep_their_system_prompt_tags_split_and_status(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rows.jsonl",
        '{"instruction": "Classify", "input": "charged twice", "system": "Be brief.",'
        ' "tags": ["vip"], "split": "eval", "status": "rejected"}\n',
    )
    (row,) = read_unlabeled(path).examples
    assert row.messages == (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Classify\n\ncharged twice"),
    )
    assert (row.tags, row.split, row.status) == (("vip",), "eval", "rejected")


def test_an_exported_unanswered_row_imports_back_unlabeled(tmp_path: Path) -> None:
    row = {
        "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}],
        "split": "train",
        "status": "pending",
        "tags": [],
    }
    (example,) = read_unlabeled(write(tmp_path, "export.jsonl", json.dumps(row) + "\n")).examples
    assert example.messages == (ChatMessage("system", "s"), ChatMessage("user", "q"))


UNLABELED_GOOD = '{"text": "The app crashes on start"}'

# (file name, content, expected "LINE: reason" lines); the good rows of each file are kept.
BAD_UNLABELED_ROWS: list[tuple[str, bytes, list[str]]] = [
    (
        "tickets.jsonl",
        f'{UNLABELED_GOOD}\n{{"prompt": "q", "response": "billing"}}\n{{"id": 3}}\nnot json\n{{"text": 5}}\n{{"input": "  "}}\n[1]\n'.encode(),
        [
            "2: has an answer (field 'response'); import answered rows as examples",
            "3: no prompt/input/text field (found id)",
            "4: not valid JSON (Expecting value at column 1)",
            "5: field 'text' must be a string, got a number",
            "6: field 'input' is empty",
            "7: expected a JSON object, got an array",
        ],
    ),
    (
        "statuses.jsonl",
        f'{UNLABELED_GOOD}\n{{"text": "q", "status": "approved"}}\n{{"text": "q", "split": "test"}}\n'.encode(),
        [
            "2: status 'approved' needs an answer; an unlabeled row comes in pending",
            "3: field 'split' must be one of train, eval, got 'test'",
        ],
    ),
    (
        "answered_chat.jsonl",
        f'{UNLABELED_GOOD}\n{{"messages": [{{"role": "user", "content": "q"}}, {{"role": "assistant", "content": "a"}}]}}\n{{"messages": [{{"role": "robot", "content": "q"}}]}}\n{{"messages": []}}\n'.encode(),
        [
            "2: has an answer (the last turn is the assistant's)",
            "3: messages[0]: unknown role 'robot' (expected system, user or assistant)",
            "4: 'messages' is empty",
        ],
    ),
    (
        "lines.txt",
        b"The app crashes on start\n\nbad \xff byte\n"
        + b"x" * 100_001
        + b"\nnul \x00 here\nfine again\n",
        [
            "3: not valid UTF-8",
            "4: input is too long (100001 characters, at most 100000)",
            "5: input contains a NUL character",
        ],
    ),
    (
        "tickets.csv",
        b"text,output\nThe app crashes on start,\nq,bug\nonly,two,many\nq\xff,\n",
        [
            "3: has an answer (field 'output'); import answered rows as examples",
            "4: expected 2 columns, got 3",
            "5: not valid UTF-8",
        ],
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), BAD_UNLABELED_ROWS, ids=[r[0] for r in BAD_UNLABELED_ROWS]
)
def test_bad_unlabeled_rows_name_their_line_and_reason(
    tmp_path: Path, name: str, content: bytes, expected: list[str]
) -> None:
    path = write(tmp_path, name, content)
    parsed = read_unlabeled(path)
    assert [str(r) for r in parsed.rejected] == [f"{path}:{line}" for line in expected]
    assert len(parsed.examples) >= 1, "the valid rows are kept"


BAD_UNLABELED_FILES: list[tuple[str, bytes, str]] = [
    ("empty.txt", b"\xef\xbb\xbf\n \n", "file is empty"),
    ("empty.jsonl", b"", "file is empty"),
    (
        "no_text.csv",
        b"question,answer\nq,a\n",
        "1: the header needs a prompt, input, text or instruction column (found: question, answer)",
    ),
    ("notes.md", b"# notes\n", "unknown file type '.md'; use .txt, .jsonl, .json or .csv"),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), BAD_UNLABELED_FILES, ids=[r[0] for r in BAD_UNLABELED_FILES]
)
def test_unusable_unlabeled_files_raise_one_clear_error(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(InputError) as caught:
        read_unlabeled(path)
    assert caught.value.message.startswith(str(path))
    assert expected in caught.value.message


def test_pasted_text_is_one_input_per_line_located_by_line() -> None:
    parsed = parse_unlabeled_text("Refund please\n\n  Where is my parcel?\nnul \x00\n")
    assert [e.messages[0].content for e in parsed.examples] == [
        "Refund please",
        "Where is my parcel?",
    ]
    assert [str(r) for r in parsed.rejected] == ["line 4: input contains a NUL character"]
    labelled = parse_jsonl('{"text": "Refund please"}\n', shape=UNLABELED_ROWS)
    assert [e.messages for e in labelled.examples] == [(ChatMessage("user", "Refund please"),)]


def test_a_txt_file_is_not_an_example_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"unknown file type '\.txt'"):
        read_examples(write(tmp_path, "inputs.txt", "hello\n"))


ARRAY = (
    '\ufeff[\n  {"prompt": "q1 \\u00e9", "response": "a1", "tags": ["x"], "split": "eval"},\n'
    '  7,\n  {"prompt": "q2 \\"quoted\\"", "response": "a2"},  true  ,\n'
    '  {"prompt": "' + "long " * 200 + '", "response": "a3"},\n  {"prompt": ""}\n] \n junk\n'
)
"""A JSON array whose items, numbers and literals a small chunk cuts anywhere."""


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1024 * 1024])
def test_a_json_array_reads_the_same_whatever_the_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    path = write(tmp_path, "array.json", ARRAY)
    whole = parse_json_array(ARRAY.removeprefix("\ufeff"), str(path))
    monkeypatch.setattr(imports, "READ_CHUNK", chunk)
    read = read_examples(path)
    assert read.examples == whole.examples and read.rejected == whole.rejected
    assert [e.messages[0].content[:7] for e in read.examples] == ["q1 é", 'q2 "quo', "long lo"]
    assert [str(r) for r in read.rejected] == [
        f"{path}:3: expected a JSON object, got a number",
        f"{path}:4: expected a JSON object, got a boolean",
        f"{path}:6: no known fields (expected messages, prompt/response, prompt/completion,"
        " instruction/input/output or input/output; found prompt)",
        f"{path}:8: text after the end of the JSON array (not read)",
    ]


def test_a_broken_array_in_chunks_names_the_line_of_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "READ_CHUNK", 5)
    path = write(tmp_path, "broken.json", '[\n{"prompt": "q", "response": "a"},\n{"prompt" 1}\n]')
    with pytest.raises(InputError, match=r"broken\.json:3: not valid JSON"):
        read_examples(path)
    bad_byte = write(tmp_path, "bytes.json", b'[\n{"prompt": "q", "response": "a"},\n"\xff"]')
    with pytest.raises(InputError, match=r"bytes\.json:3: not valid UTF-8"):
        read_examples(bad_byte)


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.csv", "rows.json"])
def test_rows_come_as_the_file_is_read(tmp_path: Path, name: str) -> None:
    count = 3000
    if name.endswith(".jsonl"):
        content = "".join(f'{{"prompt": "q{n}", "response": "a"}}\n' for n in range(count))
    elif name.endswith(".csv"):
        content = "prompt,response\n" + "".join(f"q{n},a\n" for n in range(count))
    else:
        items = ",\n".join(f'{{"prompt": "q{n}", "response": "a"}}' for n in range(count))
        content = f"[{items}]"
    path = write(tmp_path, name, content * 40 if name.endswith(".jsonl") else content)
    rows = stream_examples(path)
    first = next(rows)
    assert not isinstance(first, imports.RejectedRow) and first.messages[0].content == "q0"
    # The rest is still to read: the stream holds a row (and a chunk), not the file.
    assert sum(1 for _ in rows) == (40 * count if name.endswith(".jsonl") else count) - 1
