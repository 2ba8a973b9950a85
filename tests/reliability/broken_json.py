"""Bad input cases: JSON cut short, of the wrong shape, too big, or nested into nonsense."""

from __future__ import annotations

import json

from tests.reliability.corpus import Case, between, good


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
