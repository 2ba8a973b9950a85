"""The Dataset area's filter and change descriptions, without Textual."""

from __future__ import annotations

from pathlib import Path

from store.database import open_database
from store.examples import Example, NewExample, add_examples, list_examples, prompt_response
from store.projects import create_project
from tui.dataset_review import describe, matches


def _examples(tmp_path: Path) -> list[Example]:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "reviews")
    tagged = prompt_response("Great phone", "positive").messages
    add_examples(
        db,
        project.id,
        [NewExample(messages=tagged, tags=("battery",)), prompt_response("Meh.", "neutral")],
        source="imported",
        split_mode="train",
    )
    examples = list_examples(db, project.id)
    db.close()
    return examples


def test_describe_names_one_example_or_counts_several(tmp_path: Path) -> None:
    examples = _examples(tmp_path)
    assert describe("approved", examples[:1]) == f"approved example {examples[0].id}"
    assert describe("removed", examples) == "removed 2 examples"


def test_every_term_must_occur_somewhere(tmp_path: Path) -> None:
    phone, meh = _examples(tmp_path)
    assert matches(phone, "", ["great", "battery", "imported", "train"])
    assert not matches(phone, "", ["great", "neutral"])
    assert matches(meh, "dup", ["dup", "neutral"])
    assert matches(meh, "", [])
