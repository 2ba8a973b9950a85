"""Bad input, fuzzed: a corpus of broken import files through ``tunesmith examples import``, and
property tests of random bytes and of export -> import round trips.

Every file must end in a one-line error naming it, or in rejections naming ``FILE:LINE``; never
a traceback, never a bad row stored, never a valid row dropped.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.database import open_database
from store.errors import InputError
from store.examples import ChatMessage, NewExample, add_examples, list_examples
from store.exports import export_examples
from store.imports import RejectedRow, read_examples
from store.projects import create_project
from tests.reliability.scorecard import Scorecard
from tui.cli.main import cli

Refusal = Literal["file", "any"]
"""``file``: the whole file is refused in one line; ``any``: nothing in it is valid (binary)."""


@dataclass(frozen=True)
class Case:
    """One bad input: a file (or a folder ``build`` makes) and what importing it must do."""

    id: str
    name: str
    content: bytes
    valid: int
    """Rows in it that are valid and must all be stored."""
    rejected: tuple[int, ...] | Refusal
    """Line (or row) numbers that must each be rejected, or how the whole input is refused."""
    build: Callable[[Path], None] | None = None
    """Makes a folder at the path it is given, instead of writing ``content``."""


def good(tag: str, number: int) -> bytes:
    """A valid JSONL row, unique to its case."""
    return json.dumps({"prompt": f"{tag}: good row {number}", "response": "fine"}).encode()


def between(tag: str, bad: bytes, suffix: str = "jsonl") -> Case:
    """A JSONL file with ``bad`` as line 2 of 3: lines 1 and 3 must be kept."""
    content = good(tag, 1) + b"\n" + bad + b"\n" + good(tag, 3) + b"\n"
    return Case(tag, f"{tag}.{suffix}", content, valid=2, rejected=(2,))


def truncated_json() -> list[Case]:
    """A valid chat row cut short at 40 places, as line 2 of a JSONL file."""
    row = json.dumps(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Red."},
            ],
            "tags": ["a", "b"],
            "split": "train",
        }
    ).encode()
    cuts = sorted({1 + (len(row) - 2) * i // 39 for i in range(40)})
    return [between(f"truncated-at-{cut}", row[:cut]) for cut in cuts]


def truncated_arrays() -> list[Case]:
    """A JSON array file cut short at 20 places: the file is refused as a whole."""
    records = [{"prompt": f"array row {i}", "response": "fine"} for i in range(3)]
    text = json.dumps(records, indent=1).encode()
    cuts = sorted({1 + (len(text) - 2) * i // 19 for i in range(20)})
    return [
        Case(f"truncated-array-at-{cut}", f"array-{cut}.json", text[:cut], 0, "file")
        for cut in cuts
    ]


WRONG_TYPES: list[object] = [
    {"messages": 1},
    {"messages": "hello"},
    {"messages": None},
    {"messages": {}},
    {"messages": []},
    {"messages": [1, 2]},
    {"messages": [[{"role": "user", "content": "q"}]]},
    {"messages": [{"role": 1, "content": "q"}, {"role": "assistant", "content": "a"}]},
    {"messages": [{"role": "user", "content": 1}, {"role": "assistant", "content": "a"}]},
    {"messages": [{"role": "user", "content": ["q"]}, {"role": "assistant", "content": "a"}]},
    {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "a"}]},
    {"messages": [{"role": "tool", "content": "q"}, {"role": "assistant", "content": "a"}]},
    {"messages": [{"role": "user", "content": "q"}]},
    {"messages": [{"role": "assistant", "content": "a"}]},
    {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"}]},
    {"messages": [{"content": "q"}, {"role": "assistant", "content": "a"}]},
    {"prompt": 1, "response": "a"},
    {"prompt": None, "response": "a"},
    {"prompt": True, "response": "a"},
    {"prompt": {"text": "q"}, "response": "a"},
    {"prompt": "q", "response": 2.5},
    {"prompt": "q", "response": ["a"]},
    {"prompt": "q", "completion": None},
    {"prompt": ["q"], "completion": ["a"]},
    {"prompt": [{"role": "user", "content": "q"}], "completion": "a"},
    {"instruction": 1, "output": "a"},
    {"instruction": "q", "input": 5, "output": "a"},
    {"instruction": "q", "output": {"a": 1}},
    {"input": [], "output": "a"},
    {"prompt": "q", "response": "a", "tags": "x"},
    {"prompt": "q", "response": "a", "tags": [1]},
    {"prompt": "q", "response": "a", "tags": [""]},
    {"prompt": "q", "response": "a", "tags": {"a": 1}},
    {"prompt": "q", "response": "a", "split": "test"},
    {"prompt": "q", "response": "a", "split": 1},
    {"prompt": "q", "response": "a", "status": "done"},
    {"prompt": "q", "response": "a", "status": ["approved"]},
    {"prompt": "q", "response": "a", "system": 3},
    {"prompt": "", "response": "a"},
    {"prompt": "q", "response": " \n\t "},
    {"question": "q", "answer": "a"},
    {},
    [],
    "text",
    42,
    None,
    True,
]


def wrong_types() -> list[Case]:
    """Rows of the right shape with the wrong types (or values) in their fields."""
    return [
        between(f"wrong-type-{number}", json.dumps(record).encode())
        for number, record in enumerate(WRONG_TYPES)
    ]


def huge_fields() -> list[Case]:
    """Fields past the length limit, numbers past Python's digit limit, very long lines."""
    cases = [
        between("huge-prompt", json.dumps({"prompt": "x" * 100_001, "response": "a"}).encode()),
        between("huge-response", json.dumps({"prompt": "q", "response": "y" * 1_000_000}).encode()),
        between(
            "huge-system",
            json.dumps({"prompt": "q", "response": "a", "system": "s" * 200_000}).encode(),
        ),
        between("huge-integer", b'{"prompt": "q", "response": "a", "n": ' + b"9" * 5000 + b"}"),
        between("huge-integer-prompt", b'{"prompt": ' + b"1" * 10_000 + b', "response": "a"}'),
        between("huge-key", json.dumps({"k" * 300_000: 1}).encode()),
        between("huge-spaces-then-garbage", b" " * 2_000_000 + b"{]"),
        between("huge-string-unclosed", b'{"prompt": "' + b"z" * 3_000_000),
        between(
            "huge-message-content",
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": "q" * 150_000},
                        {"role": "assistant", "content": "a"},
                    ]
                }
            ).encode(),
        ),
    ]
    field = "w" * 140_000
    cases.append(
        Case(
            "csv-field-past-the-csv-limit",
            "csv-field-past-the-csv-limit.csv",
            f"prompt,response\nkept,fine\n{field},x\n".encode(),
            valid=1,
            rejected=(3,),
        )
    )
    cases.append(
        Case(
            "csv-field-past-the-length-limit",
            "csv-field-past-the-length-limit.csv",
            f"prompt,response\nkept,fine\n{'v' * 100_001},x\nalso kept,fine\n".encode(),
            valid=2,
            rejected=(3,),
        )
    )
    return cases


INVALID_UTF8: list[bytes] = [
    b"\xff",
    b"\xfe\xff",
    b"\xc3",
    b"\xc3\x28",
    b"\xa0\xa1",
    b"\xe2\x28\xa1",
    b"\xe2\x82",
    b"\xf0\x28\x8c\xbc",
    b"\xf0\x90\x28\xbc",
    b"\xf8\xa1\xa1\xa1\xa1",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\x80",
    b"\xbf",
]


def invalid_utf8() -> list[Case]:
    """Invalid UTF-8 in a JSONL string, in a JSONL key, in a CSV cell and in a JSON array."""
    cases: list[Case] = []
    for number, raw in enumerate(INVALID_UTF8):
        cases.append(
            between(f"utf8-in-value-{number}", b'{"prompt": "q' + raw + b'", "response": "a"}')
        )
        cases.append(
            between(f"utf8-in-key-{number}", b'{"pro' + raw + b'mpt": "q", "response": "a"}')
        )
        cases.append(
            Case(
                f"utf8-in-csv-{number}",
                f"utf8-in-csv-{number}.csv",
                b"prompt,response\ncsv kept 1,fine\nq" + raw + b",a\ncsv kept 3,fine\n",
                valid=2,
                rejected=(3,),
            )
        )
    for number, raw in enumerate(INVALID_UTF8[:6]):
        cases.append(
            Case(
                f"utf8-in-array-{number}",
                f"utf8-in-array-{number}.json",
                b'[\n{"prompt": "q' + raw + b'", "response": "a"}\n]\n',
                valid=0,
                rejected="file",
            )
        )
    cases.append(between("surrogate-escape", b'{"prompt": "half \\ud800 pair", "response": "a"}'))
    cases.append(
        between("surrogate-escape-tag", b'{"prompt": "q", "response": "a", "tags": ["\\udfff"]}')
    )
    cases.append(
        between(
            "surrogate-escape-message",
            b'{"messages": [{"role": "user", "content": "\\udc80"}, {"role": "assistant", "content": "a"}]}',
        )
    )
    return cases


def boms() -> list[Case]:
    """Byte-order marks where they belong, where they do not, and of other encodings."""
    bom = b"\xef\xbb\xbf"
    row = good("bom", 0)
    utf16 = (row.decode() + "\n").encode("utf-16")
    return [
        Case("bom-first-line", "bom-first-line.jsonl", bom + row + b"\n", valid=1, rejected=()),
        between("bom-second-line", bom + good("bom-second", 2)),
        Case("bom-twice", "bom-twice.jsonl", bom + bom + row + b"\n", valid=0, rejected=(1,)),
        Case("bom-only", "bom-only.jsonl", bom, valid=0, rejected="file"),
        Case("bom-and-blank-lines", "bom-blank.jsonl", bom + b"\n \n\t\n", 0, "file"),
        Case("bom-only-csv", "bom-only.csv", bom, valid=0, rejected="file"),
        Case("bom-csv", "bom.csv", bom + b"prompt,response\nbom csv,fine\n", 1, ()),
        Case(
            "bom-array",
            "bom-array.json",
            bom + b'[{"prompt": "bom array", "response": "a"}]',
            1,
            (),
        ),
        Case("bom-only-array", "bom-only-array.json", bom + b"[", valid=0, rejected="file"),
        Case("utf16-le", "utf16-le.jsonl", utf16, valid=0, rejected="any"),
        Case(
            "utf16-be",
            "utf16-be.jsonl",
            b"\xfe\xff" + (row.decode() + "\n").encode("utf-16-be"),
            0,
            "any",
        ),
        Case(
            "utf32", "utf32.jsonl", (row.decode() + "\n").encode("utf-32"), valid=0, rejected="any"
        ),
        Case("utf16-csv", "utf16.csv", "prompt,response\nq,a\n".encode("utf-16"), 0, "any"),
    ]


def ragged_csv() -> list[Case]:
    """CSV and TSV files with ragged rows, broken quotes, bad headers and stray bytes."""
    header = b"prompt,response\n"
    kept = b"csv kept,fine\n"
    cases = [
        Case(
            "csv-too-few", "few.csv", header + kept + b"only one\n" + b"also kept,fine\n", 2, (3,)
        ),
        Case("csv-too-many", "many.csv", header + kept + b"a,b,c\n" + b"also kept,fine\n", 2, (3,)),
        Case("csv-many-more", "more.csv", header + kept + b"a," * 50 + b"b\n", 1, (3,)),
        Case("csv-empty-cell", "empty-cell.csv", header + kept + b"q,\n", 1, (3,)),
        Case("csv-blank-cell", "blank-cell.csv", header + kept + b"   ,a\n", 1, (3,)),
        Case("csv-nul", "nul.csv", header + kept + b"a\x00b,c\n", 1, (3,)),
        Case(
            "csv-unclosed-quote", "unclosed.csv", header + kept + b'"never closed,a\nx,y\n', 1, (3,)
        ),
        Case(
            "csv-multiline-then-ragged",
            "multiline.csv",
            header + b'"two\nlines",fine\n' + b"ragged\n" + kept,
            2,
            (4,),
        ),
        Case("csv-header-only", "header-only.csv", header, valid=0, rejected=()),
        Case("csv-no-header", "no-header.csv", b"q,a\nq2,a2\n", valid=0, rejected="file"),
        Case("csv-wrong-header", "wrong-header.csv", b"question,answer\nq,a\n", 0, "file"),
        Case("csv-one-column-header", "one-column.csv", b"prompt\nq\n", 0, "file"),
        Case("csv-empty-header-line", "empty-header.csv", b"\nprompt,response\nq,a\n", 0, "file"),
        Case("csv-only-commas", "commas.csv", b",,,\n,,,\n", valid=0, rejected="file"),
        Case(
            "csv-tags-bad",
            "tags.csv",
            b"prompt,response,tags\ntagged kept,fine,a\n" + b"q,a,\n" + b"q2,a2,extra,cell\n",
            2,
            (4,),
        ),
        Case(
            "csv-split-bad",
            "split.csv",
            b"prompt,response,split\nsplit kept,fine,train\nq,a,test\n",
            1,
            (3,),
        ),
        Case(
            "csv-status-bad",
            "status.csv",
            b"input,output,status\nstatus kept,fine,approved\nq,a,maybe\n",
            1,
            (3,),
        ),
        Case("tsv-too-few", "few.tsv", b"prompt\tresponse\ntsv kept\tfine\nonly\n", 1, (3,)),
        Case(
            "tsv-commas-not-tabs", "commas.tsv", b"prompt,response\nq,a\n", valid=0, rejected="file"
        ),
        Case("tsv-too-many", "many.tsv", b"input\toutput\ntsv kept\tfine\na\tb\tc\n", 1, (3,)),
        Case(
            "csv-crlf-ragged",
            "crlf.csv",
            b"prompt,response\r\ncrlf kept,fine\r\nragged\r\n",
            1,
            (3,),
        ),
        Case("csv-lone-cr-line-ends", "cr.csv", b"prompt,response\rq,a\rragged\r", 1, (3,)),
        Case("csv-quote-in-header", "quote-header.csv", b'"prompt,response\nq,a\n', 0, "file"),
    ]
    return cases


def nested_garbage() -> list[Case]:
    """Deep nesting, nesting where text belongs, and JSON that is not one object per line."""
    deep_object = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    return [
        between("deep-arrays", b"[" * 100_000),
        between("deep-arrays-closed", b"[" * 20_000 + b"]" * 20_000),
        between("deep-object", deep_object),
        between(
            "deep-in-prompt", b'{"prompt": ' + b"[" * 50_000 + b"]" * 50_000 + b', "response": "a"}'
        ),
        between(
            "object-in-content",
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": {"text": "q"}},
                        {"role": "assistant", "content": "a"},
                    ]
                }
            ).encode(),
        ),
        between(
            "list-of-lists",
            json.dumps({"messages": [[["user", "q"]], [["assistant", "a"]]]}).encode(),
        ),
        between("nested-messages", json.dumps({"messages": {"messages": []}}).encode()),
        between("two-objects-one-line", good("two", 0) + b" " + good("two", 1)),
        between("object-then-garbage", good("garbage", 0) + b" trailing"),
        between("js-comment", b"// a comment"),
        between("single-quotes", b"{'prompt': 'q', 'response': 'a'}"),
        between("trailing-comma", b'{"prompt": "q", "response": "a",}'),
        between("nan-value", b'{"prompt": NaN, "response": "a"}'),
        between("python-none", b'{"prompt": None, "response": "a"}'),
        Case(
            "array-in-jsonl",
            "array.jsonl",
            b"[\n" + good("array-jsonl", 0) + b"\n]\n",
            1,
            (1, 3),
        ),
        Case(
            "pretty-object-in-jsonl",
            "pretty.jsonl",
            json.dumps({"prompt": "q", "response": "a"}, indent=2).encode(),
            0,
            (1, 2, 3, 4),
        ),
        Case(
            "array-with-junk-after",
            "junk-after.json",
            b'[{"prompt": "kept", "response": "a"}]\n[{"prompt": "never read", "response": "a"}]',
            1,
            (2,),
        ),
        Case(
            "array-rows-of-wrong-kind",
            "kinds.json",
            b'[\n{"prompt": "array kept", "response": "a"},\n"text",\n3,\n[1],\nnull\n]',
            1,
            (3, 4, 5, 6),
        ),
        Case("array-deep", "deep.json", b"[" * 100_000, valid=0, rejected="file"),
        Case(
            "array-deep-row",
            "deep-row.json",
            b"[" + b"[" * 50_000 + b"]" * 50_000 + b"]",
            0,
            "file",
        ),
        Case(
            "array-syntax-error",
            "syntax.json",
            b'[\n{"prompt": "q", "response": "a"},\n{"prompt" "q"}\n]',
            0,
            "file",
        ),
        Case(
            "object-not-array",
            "object.json",
            b'{"rows": [{"prompt": "q", "response": "a"}]}',
            0,
            (1,),
        ),
    ]


def empty_files() -> list[Case]:
    """Empty and blank files of every type."""
    cases: list[Case] = []
    for suffix in ("jsonl", "ndjson", "json", "csv", "tsv"):
        for label, content in (("empty", b""), ("newlines", b"\n\n\n"), ("spaces", b"  \t \r\n  ")):
            cases.append(Case(f"{label}-{suffix}", f"{label}.{suffix}", content, 0, "file"))
    cases.append(Case("empty-array", "empty-array.json", b"[]", valid=0, rejected=()))
    cases.append(
        Case("empty-array-spaced", "empty-spaced.json", b"  [ \n ]  ", valid=0, rejected=())
    )
    return cases


def binary_files() -> list[Case]:
    """Random bytes and well-known binary formats under import file names."""
    chooser = random.Random(1234)
    cases: list[Case] = []
    for number in range(16):
        size = chooser.choice([1, 7, 64, 1000, 65_536])
        data = bytes(chooser.getrandbits(8) for _ in range(size))
        suffix = ("jsonl", "json", "csv", "tsv")[number % 4]
        cases.append(Case(f"random-{number}-{suffix}", f"random-{number}.{suffix}", data, 0, "any"))
    magic = {
        "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "gzip": b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
        "zip": b"PK\x03\x04\x14\x00\x00\x00\x08\x00",
        "elf": b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8,
        "pickle": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93.",
        "sqlite": b"SQLite format 3\x00" + b"\x00" * 84,
        "nul-bytes": b"\x00" * 4096,
    }
    for kind, data in magic.items():
        for suffix in ("jsonl", "csv"):
            cases.append(Case(f"{kind}-as-{suffix}", f"{kind}.{suffix}", data, 0, "any"))
    for suffix in ("pkl", "bin", "pt", "parquet", "txt", "xlsx", ""):
        name = f"data.{suffix}" if suffix else "data"
        cases.append(Case(f"unknown-type-{suffix or 'none'}", name, good("x", 0), 0, "file"))
    return cases


def mixed_files() -> list[Case]:
    """Long files with valid rows among rows from every family above."""
    bad_rows = [
        b'{"prompt": "q", "resp',
        b"\xff\xfe",
        b"[1, 2]",
        b'{"prompt": 1, "response": "a"}',
        b'{"messages": [{"role": "robot", "content": "q"}]}',
        b"[" * 5000,
        b'{"prompt": "\\ud800", "response": "a"}',
        json.dumps({"prompt": "x" * 100_001, "response": "a"}).encode(),
    ]
    cases = []
    for number in range(4):
        chooser = random.Random(number)
        lines: list[bytes] = []
        rejected: list[int] = []
        valid = 0
        for line_number in range(1, 201):
            if chooser.random() < 0.5:
                lines.append(good(f"mixed-{number}", line_number))
                valid += 1
            else:
                lines.append(chooser.choice(bad_rows))
                rejected.append(line_number)
        content = b"\n".join(lines) + b"\n"
        cases.append(
            Case(f"mixed-{number}", f"mixed-{number}.jsonl", content, valid, tuple(rejected))
        )
    return cases


def write_arrow(path: Path, columns: dict[str, list[object]]) -> None:
    """An Arrow stream file as ``datasets.save_to_disk`` writes them."""
    table = pa.table(columns)
    with pa.OSFile(str(path), "wb") as sink, ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def dataset_folder(
    state: object = None,
    arrow: dict[str, list[object]] | None = None,
    raw_arrow: bytes | None = None,
) -> Callable[[Path], None]:
    """A builder of a ``save_to_disk`` folder with the given state.json and data file."""

    def build(folder: Path) -> None:
        folder.mkdir()
        chosen = state if state is not None else {"_data_files": [{"filename": "data.arrow"}]}
        (folder / "state.json").write_text(json.dumps(chosen), encoding="utf-8")
        if arrow is not None:
            write_arrow(folder / "data.arrow", arrow)
        if raw_arrow is not None:
            (folder / "data.arrow").write_bytes(raw_arrow)

    return build


def folder_files(files: dict[str, str]) -> Callable[[Path], None]:
    """A builder of a folder holding ``files`` (name -> text)."""

    def build(folder: Path) -> None:
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")

    return build


def folder_with_link(target_kind: str) -> Callable[[Path], None]:
    """A dataset folder one of whose files is a link to a file outside it."""

    def build(folder: Path) -> None:
        outside = folder.parent / f"outside-{target_kind}"
        outside.mkdir()
        write_arrow(outside / "data.arrow", {"prompt": ["outside"], "response": ["secret"]})
        (outside / "state.json").write_text(
            json.dumps({"_data_files": [{"filename": "data.arrow"}]}), encoding="utf-8"
        )
        folder.mkdir()
        if target_kind == "state":
            (folder / "state.json").symlink_to(outside / "state.json")
        elif target_kind == "arrow":
            (folder / "state.json").write_text(
                json.dumps({"_data_files": [{"filename": "data.arrow"}]}), encoding="utf-8"
            )
            (folder / "data.arrow").symlink_to(outside / "data.arrow")
        else:
            (folder / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
            (folder / "train").symlink_to(outside)

    return build


def dataset_folders() -> list[Case]:
    """``save_to_disk`` folders with broken state files, data files, traversal and links."""
    rows: dict[str, list[object]] = {
        "prompt": ["arrow kept", "", None],
        "response": ["fine", "a", "b"],
    }
    folders = [
        Case("folder-empty", "empty-folder", b"", 0, "file", dataset_folder(state={})),
        Case(
            "folder-state-not-json",
            "state-not-json",
            b"",
            0,
            "file",
            folder_files({"state.json": "{oops"}),
        ),
        Case("folder-state-list", "state-list", b"", 0, "file", dataset_folder(state=[1, 2])),
        Case(
            "folder-data-files-string",
            "df-string",
            b"",
            0,
            "file",
            dataset_folder(state={"_data_files": "data.arrow"}),
        ),
        Case(
            "folder-data-files-ints",
            "df-ints",
            b"",
            0,
            "file",
            dataset_folder(state={"_data_files": [1, 2]}),
        ),
        Case(
            "folder-filename-int",
            "fn-int",
            b"",
            0,
            "file",
            dataset_folder(state={"_data_files": [{"filename": 7}]}),
        ),
        Case("folder-missing-arrow", "missing-arrow", b"", 0, "file", dataset_folder()),
        Case(
            "folder-traversal",
            "traversal",
            b"",
            0,
            "file",
            dataset_folder(state={"_data_files": [{"filename": "../outside.arrow"}]}),
        ),
        Case(
            "folder-absolute",
            "absolute",
            b"",
            0,
            "file",
            dataset_folder(state={"_data_files": [{"filename": "/etc/passwd"}]}),
        ),
        Case(
            "folder-corrupt-arrow",
            "corrupt",
            b"",
            0,
            "file",
            dataset_folder(raw_arrow=b"ARROW1\x00\x00garbage"),
        ),
        Case(
            "folder-json-as-arrow",
            "json-arrow",
            b"",
            0,
            "file",
            dataset_folder(raw_arrow=good("x", 0)),
        ),
        Case("folder-bad-rows", "bad-rows", b"", 1, (2, 3), dataset_folder(arrow=rows)),
        Case(
            "folder-wrong-columns",
            "wrong-columns",
            b"",
            0,
            (1,),
            dataset_folder(arrow={"question": ["q"], "answer": ["a"]}),
        ),
        Case(
            "folder-int-columns",
            "int-columns",
            b"",
            0,
            (1, 2),
            dataset_folder(arrow={"prompt": [1, 2], "response": [3, 4]}),
        ),
        Case(
            "folder-link-state",
            "link-state",
            b"",
            0,
            "file",
            folder_with_link("state"),
        ),
        Case(
            "folder-link-arrow",
            "link-arrow",
            b"",
            0,
            "file",
            folder_with_link("arrow"),
        ),
        Case(
            "folder-link-split",
            "link-split",
            b"",
            0,
            "file",
            folder_with_link("split"),
        ),
        Case(
            "folder-splits-string",
            "splits-string",
            b"",
            0,
            "file",
            folder_files({"dataset_dict.json": '{"splits": "train"}'}),
        ),
        Case(
            "folder-splits-objects",
            "splits-objects",
            b"",
            0,
            "file",
            folder_files({"dataset_dict.json": '{"splits": [{"a": 1}]}'}),
        ),
        Case(
            "folder-splits-traversal",
            "splits-traversal",
            b"",
            0,
            "file",
            folder_files({"dataset_dict.json": '{"splits": ["..", "../x"]}'}),
        ),
    ]
    return folders


CASES = (
    truncated_json()
    + truncated_arrays()
    + wrong_types()
    + huge_fields()
    + invalid_utf8()
    + boms()
    + ragged_csv()
    + nested_garbage()
    + empty_files()
    + binary_files()
    + mixed_files()
    + dataset_folders()
)

_REJECTION = re.compile(r"^(?P<where>.+):(?P<line>row \d+|\d+): (?P<reason>.+)$")


def test_the_corpus_is_large_and_its_names_unique() -> None:
    assert len(CASES) >= 200
    assert len({case.id for case in CASES}) == len(CASES)


def import_file(db_path: Path, path: Path) -> Result:
    """``tunesmith examples import p PATH`` in this process, as a user runs it."""
    return CliRunner().invoke(cli, ["--db", str(db_path), "examples", "import", "p", str(path)])


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_file_is_refused_or_rejected_by_line_and_its_valid_rows_kept(
    case: Case, tmp_path: Path, scorecard: Scorecard
) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "p")
    path = tmp_path / case.name
    if case.build is not None:
        case.build(path)
    else:
        path.write_bytes(case.content)

    result = import_file(db_path, path)
    crashed = (result.exception is not None and not isinstance(result.exception, SystemExit)) or (
        "Traceback" in result.output
    )
    stored = len(list_examples(db, project.id))
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    rejections = [
        _REJECTION.match(line) for line in result.stderr.splitlines() if line not in errors
    ]
    rejected_lines = [match["line"] for match in rejections if match is not None]
    expected_lines = [
        f"row {number}" if case.build is not None else str(number)
        for number in (case.rejected if isinstance(case.rejected, tuple) else ())
    ]
    if case.rejected == "file":
        silently_accepted = stored > 0 or not errors
    elif case.rejected == "any":
        silently_accepted = stored > 0 or not (errors or rejected_lines)
    else:
        silently_accepted = stored > case.valid or len(rejected_lines) < len(expected_lines)
    scorecard.bad_input(case.id, crashed=crashed, silently_accepted=silently_accepted)
    scorecard.rows(f"valid rows in {case.id}", expected=case.valid, kept=min(stored, case.valid))

    assert not crashed, result.output
    assert result.exit_code in (0, 1), result.output
    assert all(match is not None for match in rejections), result.stderr
    assert all(match["where"] == str(path) for match in rejections if match is not None)
    if case.rejected in ("file", "any") and errors:
        assert len(errors) == 1 and str(path) in errors[0], result.stderr
        assert result.exit_code == 1 and stored == 0
    if case.rejected == "file":
        assert errors, result.output
    elif case.rejected == "any":
        assert stored == 0
    else:
        assert errors == [], result.stderr
        assert rejected_lines == expected_lines, result.stderr
        assert stored == case.valid
        assert result.exit_code == (1 if expected_lines else 0)


ROLE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
    min_size=1,
    max_size=200,
).filter(lambda text: bool(text.strip()))


@st.composite
def conversations(draw: st.DrawFn) -> NewExample:
    """A valid chat example: an optional system turn, then user/assistant pairs."""
    messages: list[ChatMessage] = []
    if draw(st.booleans()):
        messages.append(ChatMessage("system", draw(ROLE_TEXT)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        messages.append(ChatMessage("user", draw(ROLE_TEXT)))
        messages.append(ChatMessage("assistant", draw(ROLE_TEXT)))
    tags = draw(st.lists(ROLE_TEXT.map(str.strip), max_size=3, unique=True))
    split = draw(st.sampled_from(["train", "eval"]))
    status = draw(st.sampled_from(["pending", "approved", "rejected"]))
    return NewExample(tuple(messages), tuple(tags), split, status)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(examples=st.lists(conversations(), min_size=1, max_size=12))
def test_export_then_import_gives_back_the_same_rows(
    tmp_path_factory: pytest.TempPathFactory, scorecard: Scorecard, examples: list[NewExample]
) -> None:
    folder = tmp_path_factory.mktemp("round-trip")
    db = open_database(folder / "t.db")
    source = create_project(db, "source")
    add_examples(db, source.id, examples, source="typed")
    stored = list_examples(db, source.id)
    path = folder / "export.jsonl"
    export_examples(path, stored)

    parsed = read_examples(path)
    copy = create_project(db, "copy")
    add_examples(db, copy.id, parsed.examples, source="imported")
    copied = list_examples(db, copy.id)

    def row(example: object) -> tuple[object, ...]:
        assert hasattr(example, "messages")
        return (example.messages, example.tags, example.split, example.status)  # type: ignore[attr-defined]

    scorecard.rows("round trip through export and import", expected=len(stored), kept=len(copied))
    assert parsed.rejected == []
    assert [row(e) for e in copied] == [row(e) for e in stored]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=2000),
        st.text(max_size=500).map(str.encode),
        st.lists(
            st.sampled_from(
                [
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b'"',
                    b",",
                    b":",
                    b"\n",
                    b"\\u",
                    b"d8",
                    b"00",
                    b"\xff",
                    b"prompt",
                    b"response",
                    b"messages",
                    b"role",
                    b"1",
                ]
            ),
            max_size=80,
        ).map(b"".join),
    ),
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".ndjson"]),
)
def test_random_bytes_never_raise_anything_but_input_error(
    tmp_path_factory: pytest.TempPathFactory, scorecard: Scorecard, data: bytes, suffix: str
) -> None:
    folder = tmp_path_factory.mktemp("random")
    path = folder / f"random{suffix}"
    path.write_bytes(data)
    db = open_database(folder / "t.db")
    project = create_project(db, "p")
    crashed = True
    rejected: list[RejectedRow] = []
    try:
        parsed = read_examples(path)
        rejected = parsed.rejected
        add_examples(db, project.id, parsed.examples, source="imported")
        crashed = False
    except InputError as error:
        crashed = "\n" in error.message or str(path) not in error.message
    finally:
        scorecard.bad_input(f"random bytes as {suffix}", crashed=crashed, silently_accepted=False)
    assert not crashed
    assert all(str(row).startswith(f"{path}:") for row in rejected)
