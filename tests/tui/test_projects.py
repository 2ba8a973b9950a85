"""Choosing and creating projects in the picker the app opens with, driven with Pilot."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Markdown

from store.database import open_database
from store.projects import create_project, get_project
from tests.tui.pilot import SIZE, choose, row_texts, settle, shown
from tui.app import TunesmithApp
from tui.dialogs.project_picker import ProjectPickerScreen
from tui.screens.chat import ChatScreen
from tui.screens.dataset import DatasetScreen
from tui.widgets.dataset.examples_table import ExamplesTable
from tui.widgets.key_table import KeyTable


async def test_start_shows_the_picker_with_projects_and_counts(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ProjectPickerScreen)
        table = app.screen.query_one("#picker-projects", KeyTable)
        assert table.has_focus
        assert [cell.plain for cell in table.get_row_at(0)] == [
            "reviews",
            "SmolLM2-135M-Instruct",
            "5",
        ]
        assert app.current_project is None


async def test_choosing_a_project_shows_its_examples_and_counts(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot)
        assert isinstance(app.screen, DatasetScreen)
        assert app.current_mode == "dataset"
        assert app.current_project is not None and app.current_project.name == "reviews"
        assert app.screen.project == app.current_project
        summary = shown(app.screen, "#dataset-summary")
        assert "5 examples" in summary
        assert "pending 1  approved 4  rejected 0" in summary
        assert "train 4  eval 1" in summary
        table = app.screen.query_one(ExamplesTable)
        rows = row_texts(table)
        assert len(rows) == 5
        first = rows[0]
        assert first[1:4] == ["approved", "train", "imported"]
        # At 80 columns the tags give way to the prompt and response; the preview has them.
        assert first[4].startswith("batt")
        assert first[5].startswith("Great phone")
        assert "Second line" not in first[5]
        assert rows[4][1:4] == ["pending", "eval", "typed"]
        assert "review" in str(app.screen.query_one("#area-bar-project").render())


async def test_empty_database_invites_creating_a_project(empty_db_path: Path) -> None:
    app = TunesmithApp(empty_db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, ProjectPickerScreen)
        status = shown(app.screen, "#picker-status")
        assert "No projects yet" in status
        assert "tunesmith examples import NAME FILE" in status
        assert not app.screen.query_one("#picker-projects").display
        assert app.screen.query_one("#picker-new-name", Input).has_focus


async def test_creating_a_project_from_the_picker_opens_it(
    empty_db_path: Path,
) -> None:
    app = TunesmithApp(empty_db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # Digits and p go into the box, not to the area keys.
        await pilot.press(*"fresh-1p", "enter")
        await settle(pilot)
        # A project without examples opens on the Chat area, where the task is described.
        assert isinstance(app.screen, ChatScreen)
        assert app.current_project is not None and app.current_project.name == "fresh-1p"
        opening = app.screen.query_one("#chat-log").query_one(Markdown)
        assert "What should the model do?" in opening.source
        await pilot.press("f3")
        await settle(pilot)
        assert "No examples in fresh-1p yet" in shown(app.screen, "#dataset-summary")
        assert "press i to import a file" in shown(app.screen, "#dataset-summary")
    db = open_database(empty_db_path)
    assert get_project(db, "fresh-1p").base_model == "SmolLM2-135M-Instruct"
    db.close()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("bad name [b]x[/]", "project name 'bad name [b]x[/]': use 1-64 letters"),
        ("reviews", "project 'reviews' already exists"),
        ("", "Type a name for the new project first."),
        ("   ", "Type a name for the new project first."),
    ],
)
async def test_a_refused_name_shows_inline(db_path: Path, typed: str, expected: str) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("tab", *typed, "enter")
        await settle(pilot)
        assert isinstance(app.screen, ProjectPickerScreen)
        assert expected in shown(app.screen, "#picker-error")
        assert app.is_running
        await pilot.press("x")
        await pilot.pause()
        assert shown(app.screen, "#picker-error") == ""


async def test_the_picker_reopens_on_the_current_project(db_path: Path) -> None:
    db = open_database(db_path)
    create_project(db, "second")
    db.close()
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "second")
        assert app.current_project is not None and app.current_project.name == "second"
        # "second" has no examples, so it opened on Chat, whose box takes the letter p.
        await pilot.press("ctrl+o")
        await settle(pilot)
        assert isinstance(app.screen, ProjectPickerScreen)
        assert app.screen.query_one("#picker-projects", KeyTable).cursor_row == 1
        await pilot.press("k", "enter")
        await settle(pilot)
        assert app.current_project is not None and app.current_project.name == "reviews"


async def test_a_new_project_gets_the_configured_base_model(
    empty_db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNESMITH_BASE_MODEL", "Qwen2.5-0.5B-Instruct")
    app = TunesmithApp(empty_db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        label = str(app.screen.query_one("#picker-new-label").render())
        assert label == "New project (base model Qwen2.5-0.5B-Instruct):"
        await pilot.press(*"fresh", "enter")
        await settle(pilot)
        assert app.current_project is not None
        assert app.current_project.base_model == "Qwen2.5-0.5B-Instruct"
    db = open_database(empty_db_path)
    assert get_project(db, "fresh").base_model == "Qwen2.5-0.5B-Instruct"
    db.close()
