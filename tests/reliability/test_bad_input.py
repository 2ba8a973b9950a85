"""Bad input, fuzzed: a corpus of broken import files through ``tunesmith examples import``, and
property tests of random bytes and of export -> import round trips.

Every file must end in a one-line error naming it, or in rejections naming ``FILE:LINE``; never
a traceback, never a bad row stored, never a valid row dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

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
from store.vocabulary import EXAMPLE_SPLITS, EXAMPLE_STATUSES
from tests.reliability.broken_folders import dataset_folders
from tests.reliability.broken_json import (
    huge_fields,
    nested_garbage,
    truncated_arrays,
    truncated_json,
    wrong_types,
)
from tests.reliability.broken_text import (
    binary_files,
    boms,
    empty_files,
    invalid_utf8,
    mixed_files,
    ragged_csv,
)
from tests.reliability.corpus import Case
from tests.reliability.scorecard import Scorecard
from tui.cli.main import cli

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
    split = draw(st.sampled_from(EXAMPLE_SPLITS))
    status = draw(st.sampled_from(EXAMPLE_STATUSES))
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
