"""Reading a project's examples in the Dataset area: moving, previewing, reloading, and
hostile text shown as text; driven with Pilot on a temporary database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from store.database import open_database
from store.examples import add_examples, list_examples, prompt_response
from store.projects import get_project
from tests.tui.pilot import (
    ANSI_TEXT,
    CLICK_TEXT,
    CLOSING_TAG_TEXT,
    SIZE,
    choose,
    row_texts,
    settle,
    shown,
)
from tui.app import TunesmithApp
from tui.screens.dataset import DatasetScreen
from tui.text import plain
from tui.widgets.dataset.example_preview import ExamplePreview
from tui.widgets.dataset.examples_table import ExamplesTable, column_widths


async def test_j_and_k_move_the_cursor(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot)
        table = app.screen.query_one(ExamplesTable)
        assert table.has_focus and table.cursor_row == 0
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1


async def test_the_highlighted_example_is_previewed_in_full(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot)
        preview = app.screen.query_one(ExamplePreview)
        assert shown(preview, "#preview-prompt") == (
            "Great phone, the battery lasts two days.\nSecond line."
        )
        await pilot.press("j")
        assert shown(preview, "#preview-prompt") == CLICK_TEXT
        assert shown(preview, "#preview-response") == "[@click=app.quit]y[/]"
        await pilot.press("j", "j")
        assert shown(preview, "#preview-prompt") == "[31mred[0m and a bell"
        assert app.is_running


async def test_untrusted_text_shows_literally_and_does_nothing(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    # Wide enough that no hostile cell is cut short.
    async with app.run_test(size=(120, 30)) as pilot:
        await choose(pilot)
        table = app.screen.query_one(ExamplesTable)
        rows = row_texts(table)
        assert [row[5] for row in rows[1:4]] == [
            CLICK_TEXT,
            CLOSING_TAG_TEXT,
            "[31mred[0m and a bell",
        ]
        assert [row[6] for row in rows[1:4]] == [
            "[@click=app.quit]y[/]",
            "[bold]not bold[/bold]",
            "]0;retitledplain",
        ]
        assert all(cell.spans == [] for cell in table.get_row_at(1)[5:])
        # On screen too: what was typed, not what markup would make of it.
        screen_svg = app.export_screenshot()
        for shown in ("[@click=app.quit]x[/]", "[/]", "[31mred[0m", "[bold]not"):
            assert shown in screen_svg
        # Clicking the cells and moving over them must neither quit nor crash the app.
        for row in (1, 2, 3):
            await pilot.click(ExamplesTable, offset=(60, 1 + row))
            await pilot.click(ExamplesTable, offset=(100, 1 + row))
            await pilot.press("j")
        await pilot.pause()
        assert app.is_running
        assert app.return_code is None
        assert isinstance(app.screen, DatasetScreen)


async def test_reload_reads_examples_added_meanwhile(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot)
        db = open_database(db_path)
        add_examples(
            db,
            get_project(db, "reviews").id,
            [prompt_response("one more", "yes")],
            source="typed",
        )
        db.close()
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.screen.query_one(ExamplesTable).row_count == 6


def test_plain_is_never_markup_and_has_no_controls() -> None:
    assert plain(CLICK_TEXT).plain == CLICK_TEXT
    assert plain(CLICK_TEXT).spans == []
    assert plain(ANSI_TEXT).plain == "[31mred[0m and a bell"
    assert plain("first\nsecond", max_len=20).plain == "first"
    assert plain("x" * 30, max_len=10).plain == "x" * 9 + "…"
    assert plain("漢字漢字漢字", max_len=5).cell_len <= 5


def test_column_widths_fit_the_terminal() -> None:
    db_examples: list[Any] = []
    narrow = column_widths(db_examples, 78)
    wide = column_widths(db_examples, 158)
    for widths, available in ((narrow, 78), (wide, 158)):
        total = sum(vars(widths).values()) + 9 * 2
        assert total == available
    assert wide.prompt > narrow.prompt
    assert column_widths(db_examples, 20).prompt == 12


def test_examples_fixture_is_what_the_tests_expect(db_path: Path) -> None:
    db = open_database(db_path)
    prompts = [example.prompt for example in list_examples(db, get_project(db, "reviews").id)]
    db.close()
    assert prompts[1:4] == [CLICK_TEXT, CLOSING_TAG_TEXT, ANSI_TEXT]
