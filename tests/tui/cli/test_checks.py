"""``examples check`` and the warnings ``train`` prints: leaks, duplicates, balance, length."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from agent.spec import TaskSpec, save_spec
from store.database import open_database
from store.examples import add_examples, list_examples, prompt_response
from store.projects import create_project
from store.vocabulary import ExampleSplit
from tests.tui.test_dataset import tiny_tokenizer_folder
from tui.cli.checks import check_command
from tui.cli.main import TunesmithGroup, cli
from tui.cli.state import CliState

ESCAPES = "\x1b[31mred\x1b[0m \u202eevil"


@click.group(cls=TunesmithGroup)
@click.option("--db", "db_path", type=click.Path(path_type=Path), required=True)
@click.pass_context
def tool(ctx: click.Context, db_path: Path) -> None:
    """The top of the command line, with ``check`` added as ``tui.cli.main`` adds it."""
    ctx.obj = CliState(db_path=db_path)


examples = click.Group("examples")
examples.add_command(check_command)
tool.add_command(examples)


def check(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(tool, ["--db", str(db_path), "examples", "check", *args])


@pytest.fixture
def support_db(tmp_path: Path) -> Path:
    """Project ``support``: a label task with a planted leak, a duplicate pair, a rare label,
    a row longer than its model's 20-token context and an eval duplicate full of escapes."""
    path = tmp_path / "t.db"
    db = open_database(path)
    model = tiny_tokenizer_folder(tmp_path / "model", context=20)
    project = create_project(db, "support", base_model=str(model))
    save_spec(
        db,
        project.id,
        TaskSpec(output_kind="labels", labels=("billing", "shipping", "technical")),
    )
    train = [
        ("reset my password please", "technical"),
        ("the app crashes when I log in", "technical"),
        ("Where is my order?", "shipping"),
        ("where is my ORDER", "shipping"),
        *((f"charged twice in month {i}", "billing") for i in range(10)),
        ("word " * 30, "billing"),
    ]
    evaluation = [
        ("reset my password now", "technical"),
        (f"{ESCAPES} parcel", "shipping"),
        (f"{ESCAPES}  PARCEL!", "shipping"),
    ]
    splits: tuple[tuple[ExampleSplit, list[tuple[str, str]]], ...] = (
        ("train", train),
        ("eval", evaluation),
    )
    for split, rows in splits:
        add_examples(
            db,
            project.id,
            [prompt_response(prompt, answer) for prompt, answer in rows],
            source="typed",
            split_mode=split,
        )
    db.close()
    return path


def _ids(db_path: Path) -> dict[str, int]:
    db = open_database(db_path)
    return {e.prompt: e.id for e in list_examples(db, 1)}


def test_check_prints_one_safe_line_per_finding_and_a_summary(support_db: Path) -> None:
    result = check(support_db, "support")
    assert result.exit_code == 0, result.output
    ids = _ids(support_db)
    lines = result.stdout.splitlines()
    warnings = [line for line in lines if line.startswith("warning: ")]
    password, leak = ids["reset my password please"], ids["reset my password now"]
    assert warnings[0] == (
        f"warning: eval example {leak} repeats train example {password}"
        " (one word apart, similarity 0.75): reset my password now"
    )
    assert warnings[1].startswith(
        f"warning: train: examples {ids['Where is my order?']} and {ids['where is my ORDER']}"
        " have the same input"
    )
    assert warnings[2].startswith("warning: eval: examples ")
    # ESC and the bidi override are gone; what is left of the escape is inert text.
    assert warnings[2].endswith("have the same input: [31mred[0m evil parcel")
    assert warnings[3:] == [
        "warning: label 'shipping' has 2 train rows, under a fifth of 'billing' (11): add"
        " rows of it",
        f"warning: example {ids['word ' * 30]} is 39 tokens, more than the model's context of"
        " 20: a run would fail on it",
    ]
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert all(len(line) <= 160 for line in lines)
    assert lines[-2] == "labels (train/eval rows): billing 11/0, shipping 2/2, technical 2/1"
    assert lines[-1] == (
        "Checked 15 train and 3 eval rows: 1 leak, 2 duplicate groups, 1 row too long,"
        " 1 label balance warning."
    )


def test_check_json_has_every_finding_and_escapes_control_characters(support_db: Path) -> None:
    result = check(support_db, "support", "--json")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\\u001b" in result.stdout
    record = json.loads(result.stdout)
    ids = _ids(support_db)
    assert set(record) == {"rows", "leaks", "duplicates", "balance", "too_long", "warnings"}
    assert record["leaks"] == [
        {
            "eval_id": ids["reset my password now"],
            "train_id": ids["reset my password please"],
            "similarity": 0.75,
            "kind": "one_word",
        }
    ]
    assert record["duplicates"]["train"] == [[ids["Where is my order?"], ids["where is my ORDER"]]]
    assert len(record["duplicates"]["eval"]) == 1
    assert record["balance"]["train"] == {"billing": 11, "shipping": 2, "technical": 2}
    assert record["too_long"] == [{"id": ids["word " * 30], "tokens": 39, "context": 20}]
    assert len(record["warnings"]) == 5


def test_check_of_clean_rows_says_so_and_of_an_unknown_project_fails(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "clean")
    add_examples(
        db,
        project.id,
        [prompt_response("Summarise this note about the meeting.", "Meeting moved to Friday.")],
        source="typed",
        split_mode="train",
    )
    result = check(db_path, "clean")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Checked 1 train and 0 eval rows: nothing to warn about.\n"
    missing = check(db_path, "nope")
    assert missing.exit_code == 1
    assert missing.stderr.strip().splitlines() == [
        "Error: no project named 'nope' (projects: clean)"
    ]


def test_train_warns_with_the_first_findings_and_still_starts(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "support")
    rows = [
        prompt_response(text, "a")
        for i in range(8)
        for text in (f"ticket number {i} is open", f"Ticket number {i} is OPEN!")
    ]
    add_examples(db, project.id, rows, source="typed", split_mode="train")
    db.close()
    result = CliRunner().invoke(cli, ["--db", str(db_path), "train", "support", "--print-launch"])
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert len(warnings) == 6
    assert all(line.startswith("warning: train: examples ") for line in warnings[:5])
    assert warnings[5] == "... and 3 more: tunesmith examples check support"
    # The launch command alone stays on stdout, for a script to take.
    assert [line.split()[1:3] for line in result.stdout.splitlines()] == [
        ["-m", "trainer.training.run"]
    ]
