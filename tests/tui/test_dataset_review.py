"""The Dataset area's window, orders and change descriptions, without Textual."""

from __future__ import annotations

from pathlib import Path

from store.database import open_database
from store.example_pages import EXAMPLE_ORDERS, ExampleOrder
from store.examples import Example, NewExample, add_examples, list_examples, prompt_response
from store.projects import create_project
from tui.dataset_review import WINDOW_ROWS, describe, next_order, window_offset


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


def test_a_window_holds_the_row_moved_to_about_its_middle() -> None:
    assert window_offset(0) == 0
    assert window_offset(WINDOW_ROWS // 2 - 1) == 0
    # Moving on from the row just past a window: half a window either way before the next read.
    assert window_offset(WINDOW_ROWS) == WINDOW_ROWS // 2
    assert window_offset(999_999) == 999_999 - WINDOW_ROWS // 2


def test_the_orders_go_round() -> None:
    seen: list[ExampleOrder] = ["oldest"]
    for _ in EXAMPLE_ORDERS:
        seen.append(next_order(seen[-1]))
    assert seen == ["oldest", "newest", "changed", "longest", "oldest"]
