"""The Dataset area's journeys: review (approve, reject, edit), bulk actions, undo, filter,
import, and the flags on duplicate and over-long rows, driven with Pilot at 80x24."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, TextArea
from tokenizers import Tokenizer, models, pre_tokenizers

from store.database import open_database
from store.errors import InputError
from store.example_pages import duplicate_count, shared_prompts
from store.examples import (
    ChatMessage,
    add_examples,
    get_example,
    list_examples,
    prompt_response,
)
from store.paths import embedded_model_dir
from store.projects import DEFAULT_BASE_MODEL, create_project
from tests.tui.pilot import CLICK_TEXT, SIZE, choose, demo_project, settle, shown
from tui.app import TunesmithApp
from tui.dataset_checks import (
    EMBEDDED_CONTEXT,
    TokenCounters,
    check_project,
    check_rows,
    shared_prompt_prefix,
    token_counter_for,
    without_prefix,
)
from tui.dialogs.edit_example import EditExampleScreen, from_editor_text, to_editor_text
from tui.dialogs.import_file import ImportFileScreen
from tui.screens.dataset import DatasetScreen
from tui.widgets.dataset.examples_table import ExamplesTable


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The demo project ``reviews``: four approved train rows, one eval, one hostile pending."""
    path = tmp_path / "t.db"
    demo_project(path)
    return path


def stored(db_path: Path) -> dict[int, Any]:
    """Every example of the database by id, removed ones included."""
    db = open_database(db_path)
    examples = {e.id: e for e in list_examples(db, 1, include_removed=True)}
    db.close()
    return examples


def table(app: TunesmithApp) -> ExamplesTable:
    return app.screen.query_one(ExamplesTable)


async def test_review_approve_reject_edit_and_undo(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        assert table(app).has_focus
        # The hostile pending row is the last one: approve it, and the cursor moves on.
        table(app).move_cursor(row=5)
        await pilot.press("a")
        await settle(pilot)
        assert stored(db_path)[6].status == "approved"
        await pilot.press("k", "r")
        await settle(pilot)
        assert stored(db_path)[5].status == "rejected"
        assert "approved 5  rejected 1" in shown(app.screen, "#dataset-summary")

        table(app).move_cursor(row=0)
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditExampleScreen)
        answer = editor.query_one("#edit-turn-1", TextArea)
        assert answer.has_focus and answer.text == "positive"
        answer.text = "very [b]positive[/b]"
        editor.query_one("#edit-tags", Input).value = "battery, fixed"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, DatasetScreen)
        edited = stored(db_path)[1]
        assert edited.response == "very [b]positive[/b]" and edited.tags == ("battery", "fixed")
        assert edited.version == 2

        # Undo takes back the edit, then the reject, then the approve, newest first.
        await pilot.press("u")
        await settle(pilot)
        assert stored(db_path)[1].response == "positive"
        await pilot.press("u", "u")
        await settle(pilot)
        await settle(pilot)
        assert stored(db_path)[5].status == "approved"
        assert stored(db_path)[6].status == "pending"
        assert app.is_running


async def test_bulk_select_approve_reject_and_delete_with_undo(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("space", "space", "space")
        screen = app.screen
        assert isinstance(screen, DatasetScreen)
        assert screen.selected == {1, 2, 3}
        assert "3 selected" in shown(screen, "#dataset-summary")
        assert [row[0].plain for row in map(table(app).get_row_at, range(4))] == [
            "✓1",
            "✓2",
            "✓3",
            " 4",
        ]
        await pilot.press("r")
        await settle(pilot)
        assert [stored(db_path)[i].status for i in (1, 2, 3, 4)] == ["rejected"] * 3 + ["approved"]
        assert screen.selected == frozenset()
        await pilot.press("u")
        await settle(pilot)
        assert [stored(db_path)[i].status for i in (1, 2, 3)] == ["approved"] * 3

        # Delete two at once; undo brings both back, unchanged.
        table(app).move_cursor(row=0)
        await pilot.press("space", "space", "d")
        await settle(pilot)
        assert stored(db_path)[1].deleted_at is not None
        assert table(app).row_count == 4
        await pilot.press("u")
        await settle(pilot)
        assert stored(db_path)[1].deleted_at is None and stored(db_path)[2].deleted_at is None
        assert table(app).row_count == 6

        # t moves the highlighted row between train and eval.
        table(app).move_cursor(row=4)
        await pilot.press("t")
        await settle(pilot)
        assert stored(db_path)[5].split == "train"


async def test_escape_clears_the_selection_then_nothing_is_bulk(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("space", "space", "escape")
        screen = app.screen
        assert isinstance(screen, DatasetScreen) and screen.selected == frozenset()
        await pilot.press("d")
        await settle(pilot)
        assert [e.id for e in stored(db_path).values() if e.deleted_at] == [3]


async def test_filter_shows_matching_rows_and_escape_clears_it(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("slash", *"positive")
        await settle(pilot)
        assert table(app).row_count == 2
        assert "2 of 6 match 'positive'" in shown(app.screen, "#dataset-summary")
        await pilot.press("enter")
        assert table(app).has_focus
        await pilot.press("slash", "ctrl+u", *"nothing like this")
        await settle(pilot)
        assert not table(app).display
        assert "esc clears the filter" in shown(app.screen, "#dataset-summary")
        await pilot.press("escape")
        await settle(pilot)
        assert table(app).row_count == 6 and table(app).has_focus


async def test_import_a_file_lists_refused_rows(db_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "more.jsonl"
    source.write_text(
        json.dumps({"prompt": "New one [b]x[/b]", "response": "ok", "split": "eval"})
        + "\nnot json\n"
        + json.dumps({"prompt": "Meh.", "response": "neutral"})
        + "\n"
    )
    app = TunesmithApp(db_path)
    notes: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        app.notify = lambda message, **kwargs: notes.append(message)  # type: ignore[method-assign]
        await pilot.press("i")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ImportFileScreen)
        dialog.query_one("#import-path", Input).value = str(source)
        await pilot.press("enter")
        await settle(pilot)
        assert "more.jsonl:2: not valid JSON" in shown(dialog, "#import-result")
        assert "Imported 1 from more.jsonl (0 train, 1 eval); 1 already there; 1 row refused" in (
            str(dialog.query_one("#import-path-label").render())
        )
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DatasetScreen)
        assert table(app).row_count == 7
        assert any("Imported 1" in note for note in notes)


async def test_import_of_a_missing_file_says_so_in_the_dialog(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("i")
        await settle(pilot)
        await pilot.press(*"/no/such/file.jsonl", "enter")
        await settle(pilot)
        assert "Not imported: /no/such/file.jsonl: no such file" in shown(
            app.screen, "#import-result"
        )
        assert isinstance(app.screen, ImportFileScreen)


async def test_an_edit_that_would_duplicate_another_row_is_refused(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    notes: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        app.notify = lambda message, **kwargs: notes.append(message)  # type: ignore[method-assign]
        table(app).move_cursor(row=3)
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditExampleScreen)
        editor.query_one("#edit-turn-0", TextArea).text = "Arrived on time."
        editor.query_one("#edit-turn-1", TextArea).text = "neutral"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert notes == ["example 3 already has exactly this conversation"]
        assert stored(db_path)[4].prompt == "Camera is superb."


async def test_the_editor_refuses_an_empty_answer_inline(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditExampleScreen)
        editor.query_one("#edit-turn-1", TextArea).text = "   "
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, EditExampleScreen)
        assert "Cannot save: messages[1].content is empty" in shown(editor, "#edit-error")
        await pilot.press("escape")
        await settle(pilot)
        assert stored(db_path)[1].response == "positive"


async def test_hostile_text_stays_text_in_table_preview_and_editor(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=(120, 30)) as pilot:
        await choose(pilot, "reviews")
        table(app).move_cursor(row=5)
        await pilot.pause()
        row = [cell.plain for cell in table(app).get_row_at(5)]
        assert row[5] == CLICK_TEXT
        assert row[6] == "[31mred[0m and a bell"
        assert shown(app.screen, "#preview-prompt") == CLICK_TEXT
        await pilot.press("e")
        await settle(pilot)
        assert app.screen.query_one("#edit-turn-0", TextArea).text == CLICK_TEXT
        assert "\x1b" not in app.screen.query_one("#edit-turn-1", TextArea).text
        await pilot.press("escape")
        await pilot.click(ExamplesTable, offset=(60, 6))
        await settle(pilot)
        assert app.is_running and app.return_code is None


async def test_the_empty_state_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    db = open_database(path)
    create_project(db, "blank")
    db.close()
    app = TunesmithApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "blank")
        await pilot.press("f3")
        await settle(pilot)
        assert shown(app.screen, "#dataset-summary") == (
            "No examples in blank yet: press i to import a file, or describe your task in "
            "Chat (1) and the agent drafts some."
        )
        assert not table(app).display


def tiny_tokenizer_folder(folder: Path, context: int) -> Path:
    """A model folder holding a word-level tokenizer and a config with ``context``."""
    words = ["[UNK]", "a", "b", "word"]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": context}))
    return folder


def test_token_lengths_duplicates_and_long_rows(tmp_path: Path) -> None:
    model = tiny_tokenizer_folder(tmp_path / "model", context=20)
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "p", base_model=str(model))
    add_examples(
        db,
        project.id,
        [
            prompt_response("a b", "word"),
            prompt_response("A  B", "other answer"),
            prompt_response("word " * 30, "a"),
        ],
        source="typed",
    )
    examples = list_examples(db, project.id)
    counter = token_counter_for(str(model))
    assert counter.exact and counter.context == 20
    project_checks = check_project(
        examples, counter, duplicates=duplicate_count(db, project.id), total=3, labels=()
    )
    shared = shared_prompts(db, [e.id for e in examples])
    checks = check_rows(examples, counter, project_checks, shared)
    first, second, long_row = (checks.by_id[e.id] for e in examples)
    # Two words and one, plus four tokens of chat template per turn.
    assert first.tokens == 2 + 1 + 8
    assert first.same_prompt_as == (2,) and second.same_prompt_as == (1,)
    assert first.flag == "dup" and long_row.flag == "long"
    assert long_row.too_long is not None and "model's context of 20" in long_row.too_long
    assert project_checks.duplicates == 2 and project_checks.too_long == 1
    assert not project_checks.from_sample
    # Without a tokenizer file the lengths are estimates from the characters.
    estimate = token_counter_for(str(tmp_path / "no-model"))
    assert not estimate.exact and estimate.context is None
    assert check_rows(examples[:1], estimate, None, {}).by_id[examples[0].id].tokens == 1 + 1 + 8
    assert get_example(db, examples[0].id).prompt == "a b"


def test_editor_text_round_trips_and_refuses_a_broken_file() -> None:
    messages = (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Two\nlines"),
        ChatMessage("assistant", "=== not a role line\nok"),
    )
    assert from_editor_text(to_editor_text(messages)) == messages
    with pytest.raises(InputError, match="no '=== ROLE ===' lines"):
        from_editor_text("# only a comment\n")
    with pytest.raises(InputError, match="no assistant turn"):
        from_editor_text("=== user ===\nhi\n")


async def test_token_counts_turn_exact_once_the_embedded_model_is_on_disk(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        checks = shown(app.screen, "#preview-checks")
        assert "~18 tokens (estimated until the base model is on disk)" in checks
        assert table(app).get_row_at(0)[7].plain.startswith("~")

        # Converted meanwhile (by Chat, Compare or a run): the next read counts exactly.
        embedded_model_dir().parent.mkdir(parents=True)
        tiny_tokenizer_folder(embedded_model_dir(), context=8192)
        await pilot.press("ctrl+r")
        await settle(pilot)
        checks = shown(app.screen, "#preview-checks")
        assert "estimated" not in checks and "· 16 tokens" in checks
        assert not table(app).get_row_at(0)[7].plain.startswith("~")


def test_counters_look_again_until_a_tokenizer_is_found(tmp_path: Path) -> None:
    counters = TokenCounters()
    estimated = counters.for_model(DEFAULT_BASE_MODEL)
    assert not estimated.exact and estimated.context == EMBEDDED_CONTEXT
    embedded_model_dir().parent.mkdir(parents=True)
    tiny_tokenizer_folder(embedded_model_dir(), context=2048)
    exact = counters.for_model(DEFAULT_BASE_MODEL)
    assert exact.exact and exact.context == 2048
    assert counters.for_model(DEFAULT_BASE_MODEL) is exact


def test_a_hub_model_in_the_hugging_face_cache_counts_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert not token_counter_for("org/tiny").exact
    model = cache / "models--org--tiny"
    (model / "refs").mkdir(parents=True)
    (model / "refs" / "main").write_text("abc123")
    (model / "snapshots").mkdir()
    tiny_tokenizer_folder(model / "snapshots" / "abc123", context=64)
    counter = token_counter_for("org/tiny")
    assert counter.exact and counter.context == 64
    assert not token_counter_for("not a/hub id").exact


async def test_the_prompt_column_leaves_out_the_instruction_most_prompts_share(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.db"
    db = open_database(path)
    project = create_project(db, "tickets")
    instruction = "Classify this support ticket as billing, bug or account:\n"
    rows = [
        prompt_response(instruction + message, label)
        for message, label in (
            ("Charged twice", "billing"),
            ("App crashes", "bug"),
            ("Cannot log in", "account"),
            ("Refund please", "billing"),
        )
    ]
    add_examples(db, project.id, [*rows, prompt_response("Other question", "bug")], source="typed")
    db.close()
    app = TunesmithApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        prompts = [table(app).get_row_at(row)[5].plain for row in range(5)]
        assert prompts == [
            "…Charged twice",
            "…App crashes",
            "…Cannot log in",
            "…Refund please",
            "Other question",
        ]
        assert "prompts share 'Classify this support ticket as bil…' (… in the table)" in shown(
            app.screen, "#dataset-summary"
        )
        # The preview shows the whole prompt.
        assert shown(app.screen, "#preview-prompt") == instruction + "Charged twice"


def test_a_shared_start_is_an_instruction_only_when_long_and_shared_by_most() -> None:
    instruction = "Translate to French, keeping names: "
    assert shared_prompt_prefix([instruction + w for w in ("hi", "bye", "yes")]) == instruction
    # Cut back to a word, never inside one ("Al" is not a word of the instruction).
    words = ["Summarize the email below for the manager " + w for w in ("Alpha", "Alps", "Al")]
    assert shared_prompt_prefix(words) == "Summarize the email below for the manager "
    # A colon or a full stop ends it sooner than a word many messages happen to start with.
    same_start = ["Classify this support ticket: My " + w for w in ("card", "app", "login")]
    assert shared_prompt_prefix(same_start) == "Classify this support ticket: "
    # Too few rows, too short, shared by too few, or copies of one prompt: nothing.
    assert shared_prompt_prefix([instruction + "a", instruction + "b"]) == ""
    assert shared_prompt_prefix(["Say hi to Ann", "Say hi to Bob", "Say hi to Cy"]) == ""
    mixed = [instruction + "a", instruction + "b", instruction + "c", "x", "y"]
    assert shared_prompt_prefix(mixed) == ""
    assert shared_prompt_prefix(["The same long prompt, word for word."] * 4) == ""
    assert without_prefix(instruction + "hi", instruction) == "…hi"
    assert without_prefix(instruction, instruction) == instruction
    assert without_prefix("other", instruction) == "other"
