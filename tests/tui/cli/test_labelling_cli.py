"""Unlabeled inputs from the command line: import, list, accept a proposal, give a label."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agent.spec import TaskSpec, save_spec
from store.database import open_database
from store.examples import example_history, get_example, set_proposal
from store.projects import get_project
from tui.cli.main import cli


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "tunesmith.db"


def run(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db_path), *args], catch_exceptions=False)


def listed(db_path: Path, name: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(
        run(db_path, "examples", "list", name, "--json").stdout
    )
    return records


@pytest.fixture
def tickets(db_path: Path, tmp_path: Path) -> list[int]:
    """The project ``support`` with two typed examples and three unlabeled tickets."""
    run(db_path, "project", "new", "support")
    for prompt, response in [("I was charged twice", "billing"), ("The app crashes", "bug")]:
        run(db_path, "examples", "add", "support", "--prompt", prompt, "--response", response)
    inputs = tmp_path / "tickets.txt"
    inputs.write_text(
        "Refund my order\nLogin page is blank\nWhere is my parcel?\n", encoding="utf-8"
    )
    imported = run(db_path, "examples", "import", "support", str(inputs), "--unlabeled")
    assert imported.exit_code == 0, imported.output
    return [r["id"] for r in listed(db_path, "support") if r["response"] is None]


def test_unlabeled_import_stores_pending_rows_without_answers(
    db_path: Path, tmp_path: Path
) -> None:
    run(db_path, "project", "new", "p")
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(
        '{"text": "Refund my order"}\n{"text": "q", "response": "billing"}\n{"id": 3}\n',
        encoding="utf-8",
    )
    result = run(
        db_path, "examples", "import", "p", str(tickets), "--unlabeled", "--split", "train"
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{tickets}:2: has an answer (field 'response'); import answered rows as examples",
        f"{tickets}:3: no prompt/input/text field (found id)",
    ]
    assert result.stdout.splitlines() == [
        "Imported 1 new unlabeled inputs (pending) into 'p' (1 train, 0 eval); 2 rows rejected.",
        "Next: tunesmith label p  (a model proposes their answers)",
    ]
    (row,) = listed(db_path, "p")
    assert row["messages"] == [{"role": "user", "content": "Refund my order"}]
    assert (row["status"], row["source"], row["response"]) == ("pending", "imported", None)
    assert (row["proposed"], row["confidence"], row["proposed_by"]) == (None, None, None)
    again = run(db_path, "examples", "import", "p", str(tickets), "--unlabeled")
    assert "Imported 0 new unlabeled inputs" in again.stdout
    assert "1 already present" in again.stdout


def test_unlabeled_import_with_no_usable_row_fails(db_path: Path, tmp_path: Path) -> None:
    run(db_path, "project", "new", "p")
    answered = tmp_path / "answered.csv"
    answered.write_text("prompt,response\nq,a\n", encoding="utf-8")
    result = run(db_path, "examples", "import", "p", str(answered), "--unlabeled")
    assert result.exit_code == 1
    assert "Imported 0 new unlabeled inputs" in result.stdout
    assert listed(db_path, "p") == []


def test_list_shows_proposals_and_accept_makes_them_answers(
    db_path: Path, tickets: list[int]
) -> None:
    db = open_database(db_path)
    refund, login, parcel = tickets
    set_proposal(db, refund, "billing", 0.95, "base")
    set_proposal(db, login, "bug", 0.40, "run-3")
    records = {r["id"]: r for r in listed(db_path, "support")}
    assert (records[refund]["proposed"], records[refund]["confidence"]) == ("billing", 0.95)
    assert records[login]["proposed_by"] == "run-3"
    assert records[parcel]["proposed"] is None
    text = run(db_path, "examples", "list", "support").stdout
    assert "(proposed: billing, 0.95)" in text
    assert "(no answer yet)" in text

    accepted = run(db_path, "examples", "accept", "support", "--min-confidence", "0.9")
    assert accepted.exit_code == 0, accepted.output
    assert accepted.stdout.splitlines()[-1] == (
        "Accepted 1 proposals in 'support' (approved, source labelled);"
        " 1 under 0.90 left to review."
    )
    row = get_example(db, refund)
    assert (row.response, row.status, row.source) == ("billing", "approved", "labelled")
    assert [v.version for v in example_history(db, refund)] == [1], "the unanswered row is kept"
    assert not get_example(db, login).answered

    by_id = run(db_path, "examples", "accept", "support", str(login))
    assert by_id.exit_code == 0
    assert get_example(db, login).response == "bug"


def test_accept_checks_every_id_before_writing(db_path: Path, tickets: list[int]) -> None:
    db = open_database(db_path)
    refund, _, parcel = tickets
    set_proposal(db, refund, "billing", 0.95, "base")
    for ids, message in [
        (
            [str(refund), str(parcel)],
            f"Error: example {parcel} has no proposal yet; propose one: tunesmith label support",
        ),
        ([str(refund), "999"], "Error: no example with id 999"),
    ]:
        result = run(db_path, "examples", "accept", "support", *ids)
        assert result.exit_code == 1
        assert result.stderr.strip() == message
        assert not get_example(db, refund).answered, "nothing was written"
    missing = run(db_path, "examples", "accept", "support")
    assert missing.exit_code == 2
    assert "name the examples to accept" in missing.stderr
    run(db_path, "examples", "accept", "support", str(refund))
    twice = run(db_path, "examples", "accept", "support", str(refund))
    assert twice.stderr.strip() == f"Error: example {refund} already has an answer"


def test_label_gives_an_answer_matched_to_the_spec_labels(
    db_path: Path, tickets: list[int]
) -> None:
    db = open_database(db_path)
    project = get_project(db, "support")
    save_spec(db, project.id, TaskSpec(output_kind="labels", labels=("billing", "bug", "shipping")))
    refund, _, parcel = tickets
    given = run(db_path, "examples", "label", "support", str(parcel), "Shipping")
    assert given.exit_code == 0, given.output
    assert given.stdout.startswith(f"Labelled example {parcel}: shipping (approved,")
    row = get_example(db, parcel)
    assert (row.response, row.status, row.source) == ("shipping", "approved", "labelled")
    wrong = run(db_path, "examples", "label", "support", str(refund), "refunds")
    assert wrong.exit_code == 1
    assert wrong.stderr.strip() == (
        "Error: 'refunds' is not one of the labels of 'support' (billing, bug, shipping)"
    )
    assert not get_example(db, refund).answered
    corrected = run(db_path, "examples", "label", "support", str(parcel), "bug")
    assert corrected.exit_code == 0
    assert get_example(db, parcel).response == "bug"
    run(db_path, "project", "new", "other")
    foreign = run(db_path, "examples", "label", "other", str(parcel), "bug")
    assert foreign.stderr.strip() == f"Error: example {parcel} is not in project 'other'"


def test_label_says_when_there_is_nothing_to_label(db_path: Path, tickets: list[int]) -> None:
    run(db_path, "project", "new", "empty")
    nothing = run(db_path, "label", "empty")
    assert nothing.exit_code == 0
    assert nothing.stdout.startswith("No unlabeled rows in 'empty'. Import some:")
    db = open_database(db_path)
    for example_id in tickets:
        set_proposal(db, example_id, "billing", 0.5, "base")
    done = run(db_path, "label", "support")
    assert (
        done.stdout.strip()
        == "Every unlabeled row of 'support' has a proposal; --again proposes afresh."
    )
    both = run(db_path, "label", "support", "--again", "--run", "1", "--base")
    assert both.exit_code == 2
    unknown_run = run(db_path, "label", "support", "--again", "--run", "7")
    assert unknown_run.exit_code == 1
    assert unknown_run.stderr.startswith("Error: no run")


def test_accept_reports_a_proposal_that_would_duplicate_an_example(
    db_path: Path, tmp_path: Path
) -> None:
    run(db_path, "project", "new", "p")
    run(db_path, "examples", "add", "p", "--prompt", "I was charged twice", "--response", "billing")
    inputs = tmp_path / "again.txt"
    inputs.write_text("I was charged twice\nThe app crashes\n", encoding="utf-8")
    run(db_path, "examples", "import", "p", str(inputs), "--unlabeled")
    db = open_database(db_path)
    same, other = [r["id"] for r in listed(db_path, "p") if r["response"] is None]
    set_proposal(db, same, "billing", 0.9, "base")
    set_proposal(db, other, "bug", 0.8, "base")
    result = run(db_path, "examples", "accept", "p", "--min-confidence", "0")
    assert result.exit_code == 1
    first = listed(db_path, "p")[0]["id"]
    assert result.stderr.strip() == (
        f"example {same}: example {first} already has exactly this conversation"
    )
    assert result.stdout.splitlines()[-1] == (
        "Accepted 1 proposals in 'p' (approved, source labelled); 1 not accepted."
    )
    assert get_example(db, other).response == "bug"
    assert not get_example(db, same).answered
