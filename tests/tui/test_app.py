"""User journeys through the Textual app, driven with Pilot at 80x24 on a temporary database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.widgets import Input, Markdown, TextArea

from store.database import open_database
from store.errors import TunesmithError
from store.examples import NewExample, add_examples, list_examples, prompt_response
from store.projects import create_project, get_project
from tests.tui.pilot import choose, settle, shown
from tui.app import TunesmithApp, run_app
from tui.dialogs.help import HelpScreen
from tui.dialogs.project_picker import ProjectPickerScreen
from tui.screens.chat import ChatScreen
from tui.screens.compare import CompareScreen
from tui.screens.dataset import DatasetScreen
from tui.screens.train import TrainScreen
from tui.text import plain
from tui.widgets.dataset.example_preview import ExamplePreview
from tui.widgets.dataset.examples_table import ExamplesTable, column_widths
from tui.widgets.key_table import KeyTable

SIZE = (80, 24)
CLICK_PROMPT = "[@click=app.quit]x[/]"
CLOSING_TAG_PROMPT = "a closing tag [/] alone"
ANSI_PROMPT = "\x1b[31mred\x1b[0m and a bell\x07"


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every file the app might write inside the test's folder."""
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TUNESMITH_DB", raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A database with the project ``reviews``: two plain examples and three hostile ones."""
    path = tmp_path / "t.db"
    db = open_database(path)
    project = create_project(db, "reviews")
    add_examples(
        db,
        project.id,
        [
            NewExample(
                messages=prompt_response(
                    "Great phone, the battery lasts two days.\nSecond line.",
                    '{"sentiment": "positive"}',
                ).messages,
                tags=("battery",),
            ),
            prompt_response(CLICK_PROMPT, "[@click=app.quit]y[/]"),
            prompt_response(CLOSING_TAG_PROMPT, "[bold]not bold[/bold]"),
            prompt_response(ANSI_PROMPT, "\x1b]0;retitled\x07plain"),
        ],
        source="imported",
        split_mode="train",
    )
    add_examples(
        db,
        project.id,
        [prompt_response("Meh. It works.", '{"sentiment": "neutral"}')],
        source="typed",
        split_mode="eval",
        status="pending",
    )
    db.close()
    return path


@pytest.fixture
def empty_db_path(tmp_path: Path) -> Path:
    """A database with no project."""
    path = tmp_path / "empty.db"
    open_database(path).close()
    return path


def row_texts(table: ExamplesTable) -> list[list[str]]:
    """The plain text of every cell, row by row."""
    rows = []
    for index in range(table.row_count):
        cells = table.get_row_at(index)
        assert all(isinstance(cell, Text) for cell in cells)
        rows.append([cell.plain for cell in cells])
    return rows


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
        assert shown(preview, "#preview-prompt") == CLICK_PROMPT
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
            CLICK_PROMPT,
            CLOSING_TAG_PROMPT,
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


async def test_a_failing_worker_becomes_a_notification(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes: list[tuple[str, dict[str, Any]]] = []

    def failing_list_examples(*args: Any, **kwargs: Any) -> Any:
        raise TunesmithError("the disk is on [red]fire[/]", title="Database")

    app = TunesmithApp(db_path)
    monkeypatch.setattr(app, "notify", lambda message, **kwargs: notes.append((message, kwargs)))
    monkeypatch.setattr("tui.screens.dataset.list_examples", failing_list_examples)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot)
        assert notes == [
            (
                "the disk is on [red]fire[/]",
                {"title": "Database", "severity": "error", "markup": False},
            )
        ]
        monkeypatch.setattr("tui.screens.dataset.list_examples", lambda *a, **k: 1 / 0)
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


def test_plain_is_never_markup_and_has_no_controls() -> None:
    assert plain(CLICK_PROMPT).plain == CLICK_PROMPT
    assert plain(CLICK_PROMPT).spans == []
    assert plain(ANSI_PROMPT).plain == "[31mred[0m and a bell"
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
    assert prompts[1:4] == [CLICK_PROMPT, CLOSING_TAG_PROMPT, ANSI_PROMPT]
