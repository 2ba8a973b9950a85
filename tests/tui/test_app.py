"""Getting around the app: area keys and tabs, help, quitting, the palette, failures shown
as notifications, and the theme from the config file; driven with Pilot on a temporary
database."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import TextArea

from store.config import CONFIG_FILE_ENV
from store.database import open_database
from store.errors import TunesmithError
from store.examples import list_examples
from tests.tui.pilot import SIZE, choose, settle, shown
from tui.app import TunesmithApp, run_app
from tui.dialogs.help import HelpScreen
from tui.dialogs.project_picker import ProjectPickerScreen
from tui.screens.chat import ChatScreen
from tui.screens.compare import CompareScreen
from tui.screens.dataset import DatasetScreen
from tui.screens.train import TrainScreen


async def test_area_keys_switch_areas_and_each_names_the_project(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot)
        for key, mode, screen_type in [
            ("1", "chat", ChatScreen),
            # The Chat area's message box has the focus: digits type, function keys switch.
            ("f4", "train", TrainScreen),
            ("4", "compare", CompareScreen),
            ("2", "dataset", DatasetScreen),
            ("f2", "chat", ChatScreen),
            ("f4", "train", TrainScreen),
            ("f5", "compare", CompareScreen),
            ("f3", "dataset", DatasetScreen),
        ]:
            await pilot.press(key)
            await pilot.pause()
            assert app.current_mode == mode
            assert isinstance(app.screen, screen_type)
            assert "reviews" in str(app.screen.query_one("#area-bar-project").render())
        await pilot.press("1", "3")
        await pilot.pause()
        assert isinstance(app.screen, ChatScreen)
        assert app.screen.query_one("#chat-input", TextArea).text == "3"


async def test_clicking_a_tab_switches_area(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot)
        await pilot.click("#area-tab-train")
        await pilot.pause()
        assert isinstance(app.screen, TrainScreen)
        await pilot.click("#area-tab-dataset")
        await pilot.pause()
        assert isinstance(app.screen, DatasetScreen)


async def test_placeholders_before_a_project_is_chosen(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DatasetScreen)
        assert "press p" in shown(app.screen, "#dataset-summary")
        await pilot.press("3")
        await pilot.pause()
        assert "press p" in shown(app.screen, "#run-message")
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, ProjectPickerScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TrainScreen)
        assert "Press n to fine-tune on the 4 approved train examples" in shown(
            app.screen, "#run-message"
        )


async def test_help_opens_and_closes(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot)
        for open_key, close_key in [("question_mark", "escape"), ("f1", "f1"), ("f1", "q")]:
            await pilot.press(open_key)
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            keys = " ".join(str(key.render()) for key in app.screen.query(".help-key"))
            assert "Ctrl+Q" in keys and "F2 F3 F4 F5" in keys
            await pilot.press(close_key)
            await pilot.pause()
            assert isinstance(app.screen, DatasetScreen)


async def test_help_opens_over_the_picker(empty_db_path: Path) -> None:
    app = TunesmithApp(empty_db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ProjectPickerScreen)


@pytest.mark.parametrize("where", ["dataset", "picker", "input"])
async def test_ctrl_q_quits(db_path: Path, where: str) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        if where == "dataset":
            await pilot.press("escape")
        elif where == "input":
            await pilot.press("tab", "a", "b")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running
    assert app.return_code == 0


async def test_ctrl_c_in_the_picker_says_how_to_quit(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes: list[str] = []
    app = TunesmithApp(db_path)
    monkeypatch.setattr(app, "notify", lambda message, **kwargs: notes.append(message))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.is_running
        assert any("ctrl+q" in note for note in notes)


async def test_a_failing_worker_becomes_a_notification(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes: list[tuple[str, dict[str, Any]]] = []

    def failing_counts(*args: Any, **kwargs: Any) -> Any:
        raise TunesmithError("the disk is on [red]fire[/]", title="Database")

    app = TunesmithApp(db_path)
    monkeypatch.setattr(app, "notify", lambda message, **kwargs: notes.append((message, kwargs)))
    monkeypatch.setattr("tui.screens.dataset.example_counts", failing_counts)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot)
        assert notes == [
            (
                "the disk is on [red]fire[/]",
                {"title": "Database", "severity": "error", "markup": False},
            )
        ]
        monkeypatch.setattr("tui.screens.dataset.example_counts", lambda *a, **k: 1 / 0)
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert notes[-1][0] == "ZeroDivisionError: division by zero"
        assert app.is_running


async def test_palette_has_a_command_for_each_action(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot)
        commands = {command.title: command for command in app.get_system_commands(app.screen)}
        for title in ("Chat area", "Dataset area", "Train area", "Compare area", "Project"):
            assert title in commands
        assert "Help" in commands and "Quit" in commands
        # Each action of the area has its command, named as in the footer, with its key.
        for title in ("Dataset: Approve", "Dataset: Import", "Dataset: Filter"):
            assert title in commands
        assert commands["Dataset: Approve"].help.endswith("(a)")
        await commands["Dataset: Reject"].callback()
        await settle(pilot)
        assert list_examples(open_database(db_path), 1)[0].status == "rejected"
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"compare area", "enter")
        await settle(pilot)
        assert app.current_mode == "compare"


async def test_an_unusable_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_app(tmp_path)
    assert exit_info.value.code == f"tunesmith: {tmp_path}: is a folder, not a database file"


async def test_the_configured_theme_is_applied(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path(os.environ[CONFIG_FILE_ENV]).write_text('[ui]\ntheme = "nord"\n', encoding="utf-8")
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == "nord"
    # The environment variable goes over the file.
    monkeypatch.setenv("TUNESMITH_THEME", "gruvbox")
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == "gruvbox"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('[ui]\ntheme = "no-such-theme"\n', "'no-such-theme' in ui.theme / TUNESMITH_THEME"),
        ('[ui]\ncolours = "dark"\n', "unknown key ui.colours"),
    ],
)
async def test_an_unusable_setting_is_one_line_and_the_default_theme_stays(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, config: str, expected: str
) -> None:
    Path(os.environ[CONFIG_FILE_ENV]).write_text(config, encoding="utf-8")
    notes: list[tuple[str, dict[str, Any]]] = []
    app = TunesmithApp(db_path)
    default_theme = app.theme
    monkeypatch.setattr(app, "notify", lambda message, **kwargs: notes.append((message, kwargs)))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == default_theme
        assert isinstance(app.screen, ProjectPickerScreen)
        assert len(notes) == 1
        message, options = notes[0]
        assert expected in message and "\n" not in message
        assert options["title"] == "Settings" and options["markup"] is False
