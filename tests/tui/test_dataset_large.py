"""The Dataset area on a project of 100,000 examples, driven with Pilot at 80x24: the first
rows and the counts come from queries, paging reaches the last row and back, the filter and
the orders are answered in SQL, and an edit made far down the list persists."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from textual.widgets import TextArea

from store.database import open_database
from store.example_pages import ExampleView, example_counts, example_window, filter_words
from store.examples import get_example
from tests.store.big_project import NAME, write_big_project
from tests.tui.pilot import SIZE, choose, settle, shown
from tui.app import TunesmithApp
from tui.dataset_review import WINDOW_ROWS
from tui.dialogs.edit_example import EditExampleScreen
from tui.screens.dataset import DatasetScreen
from tui.widgets.dataset.examples_table import ExamplesTable

ROWS = 100_000
"""Examples of the generated project."""
REFUNDS = ROWS // 1000
"""Rows whose ticket asks for a refund: every thousandth."""
FIRST_ROWS_SECONDS = 20.0
"""A generous bound on opening the project (picker included) on a shared, loaded machine: a
list of every row takes far longer."""


@pytest.fixture(scope="module")
def generated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the project ``big`` of ROWS examples, generated once for the module."""
    return write_big_project(tmp_path_factory.mktemp("large") / "big.db", ROWS)


@pytest.fixture
def big_db(generated_db: Path, tmp_path: Path) -> Path:
    """A copy of the generated database, for a test to change."""
    copy = tmp_path / "big.db"
    shutil.copyfile(generated_db, copy)
    return copy


def table(app: TunesmithApp) -> ExamplesTable:
    return app.screen.query_one(ExamplesTable)


def highlighted_id(app: TunesmithApp) -> int:
    current = table(app).example_at(table(app).cursor_row)
    assert current is not None
    return current.id


def test_the_counts_and_windows_come_from_queries(generated_db: Path) -> None:
    db = open_database(generated_db)
    counts = example_counts(db, 1)
    assert counts.total == ROWS and counts.unanswered == 0
    assert counts.by_status == {"pending": 33_334, "approved": 33_333, "rejected": 33_333}
    assert counts.by_split == {"train": 90_000, "eval": 10_000}
    refunds = example_window(db, 1, ExampleView(filter_words("REFUND")), 0, 5)
    assert refunds.matching == REFUNDS
    assert [example.id for example in refunds.rows] == [1000, 2000, 3000, 4000, 5000]
    longest = example_window(db, 1, ExampleView(order="longest"), 0, 3)
    assert [example.id for example in longest.rows] == [100_000, 95_000, 90_000]
    db.close()


async def test_page_filter_sort_and_edit_a_hundred_thousand_rows(big_db: Path) -> None:
    app = TunesmithApp(big_db)
    async with app.run_test(size=SIZE) as pilot:
        started = time.monotonic()
        await choose(pilot, NAME)
        assert time.monotonic() - started < FIRST_ROWS_SECONDS
        screen = app.screen
        assert isinstance(screen, DatasetScreen)
        summary = shown(screen, "#dataset-summary")
        assert summary.startswith("100000 examples · pending 33334  approved 33333")
        assert "row 1 of 100000" in summary
        # A window of rows, not every row.
        assert table(app).row_count == WINDOW_ROWS and highlighted_id(app) == 1

        # Down past the window's last row reads the next window.
        table(app).move_cursor(row=WINDOW_ROWS - 1)
        await pilot.press("down")
        await settle(pilot)
        assert highlighted_id(app) == WINDOW_ROWS + 1
        assert table(app).row_count == WINDOW_ROWS
        # To the end and back.
        await pilot.press("end")
        await settle(pilot)
        assert highlighted_id(app) == ROWS
        assert "row 100000 of 100000" in shown(screen, "#dataset-summary")
        assert shown(screen, "#preview-response") == f"answer {ROWS}"
        await pilot.press("pageup")
        await settle(pilot)
        assert highlighted_id(app) < ROWS
        await pilot.press("home")
        await settle(pilot)
        assert highlighted_id(app) == 1

        # The filter is a query: every thousandth row asks for a refund.
        await pilot.press("slash", *"refund", "enter")
        await settle(pilot)
        assert table(app).row_count == REFUNDS
        assert f"{REFUNDS} of {ROWS} match 'refund'" in shown(screen, "#dataset-summary")
        await pilot.press("end")
        await settle(pilot)
        assert highlighted_id(app) == ROWS

        # Edit the last refund: the answer persists.
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditExampleScreen)
        editor.query_one("#edit-turn-1", TextArea).text = "refund sent"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, DatasetScreen)
        db = open_database(big_db)
        edited = get_example(db, ROWS)
        db.close()
        assert (edited.response, edited.version) == ("refund sent", 2)
        assert shown(screen, "#preview-response") == "refund sent"

        # Orders: newest first, then last changed first (the row just edited leads).
        await pilot.press("escape")
        await settle(pilot)
        assert table(app).row_count == WINDOW_ROWS
        await pilot.press("o")
        await settle(pilot)
        assert table(app).examples[0].id == ROWS
        assert "newest first (o)" in shown(screen, "#dataset-summary")
        await pilot.press("o")
        await settle(pilot)
        assert table(app).examples[0].id == ROWS
        assert table(app).examples[1].id == ROWS - 1
        await pilot.press("o")
        await settle(pilot)
        assert [e.id for e in table(app).examples[:2]] == [ROWS, 95_000]
        assert "longest first (o)" in shown(screen, "#dataset-summary")
        await pilot.press("o")
        await settle(pilot)
        assert table(app).examples[0].id == 1
