"""Bad input cases: broken encodings and byte-order marks, ragged CSV, empty, binary and mixed
files."""

from __future__ import annotations

import json
import random

from tests.reliability.corpus import Case, between, good

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
"""Byte sequences that are not UTF-8: stray continuation bytes, overlong forms, surrogates."""


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
            b'{"messages": [{"role": "user", "content": "\\udc80"}, {"role": "assistant", "content": "a"}]}',  # noqa: E501
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
        "pickle": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93.",  # noqa: E501
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
