"""The Dataset area's labelling queue and its rows without an answer, driven with Pilot at
80x24: least confident first, accept, a digit's label, a correction, skip, undo, the counts,
what the table shows of such rows, and the approve they refuse."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import TextArea

from agent.spec import TaskSpec, save_spec
from store.database import open_database
from store.examples import (
    Example,
    add_examples,
    list_examples,
    prompt_response,
    set_proposal,
    unlabeled_example,
)
from store.projects import create_project
from tests.tui.pilot import CLICK_TEXT, SIZE, choose, settle, shown
from tui.app import TunesmithApp
from tui.dialogs.edit_example import EditExampleScreen
from tui.screens.dataset import DatasetScreen
from tui.widgets.dataset.examples_table import ExamplesTable
from tui.widgets.dataset.label_queue import LabelQueuePanel

LABELS = ("billing", "bug", "account")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The project ``tickets`` (labels billing, bug, account): two approved rows (ids 1, 2) and
    four without an answer: 3 proposed billing at 0.9, 4 bug at 0.35 (its input hostile), 5
    account at 0.6, and 6 with no proposal."""
    path = tmp_path / "t.db"
    db = open_database(path)
    project = create_project(db, "tickets")
    save_spec(db, project.id, TaskSpec(output_kind="labels", labels=LABELS))
    add_examples(
        db,
        project.id,
        [prompt_response("Charged twice", "billing"), prompt_response("Crash", "bug")],
        source="typed",
        split_mode="train",
    )
    inputs = ("I want a refund", f"App crashes {CLICK_TEXT}", "Cannot log in", "Hello?")
    add_examples(
        db,
        project.id,
        [unlabeled_example(text) for text in inputs],
        source="imported",
        split_mode="train",
        status="pending",
    )
    for example_id, answer, confidence in (
        (3, "billing", 0.9),
        (4, "bug", 0.35),
        (5, "account", 0.6),
    ):
        set_proposal(db, example_id, answer, confidence, "base")
    db.close()
    return path


def stored(db_path: Path) -> dict[int, Example]:
    db = open_database(db_path)
    examples = {example.id: example for example in list_examples(db, 1)}
    db.close()
    return examples


def panel(app: TunesmithApp) -> LabelQueuePanel:
    return app.screen.query_one(LabelQueuePanel)


async def test_label_by_accepting_picking_correcting_and_undo(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        assert "4 to label (l; g proposes)" in shown(app.screen, "#dataset-summary")
        await pilot.press("l")
        await settle(pilot)
        queue = panel(app)
        assert queue.has_focus and not app.screen.query_one(ExamplesTable).is_on_screen
        # Least confident first; the hostile input is shown as typed.
        assert shown(queue, "#queue-counts") == "4 left to label · 0 labelled this session"
        assert shown(queue, "#queue-where").startswith("Example 4 · 1 of 4")
        assert shown(queue, "#queue-input") == f"App crashes {CLICK_TEXT}"
        assert shown(queue, "#queue-proposal") == "bug  (base, 35% sure)"
        assert shown(queue, "#queue-labels") == "1 billing  2 bug  3 account"

        await pilot.press("a")
        await settle(pilot)
        accepted = stored(db_path)[4]
        assert (accepted.response, accepted.status, accepted.source) == (
            "bug",
            "approved",
            "labelled",
        )
        assert shown(queue, "#queue-counts") == "3 left to label · 1 labelled this session"
        assert shown(queue, "#queue-where").startswith("Example 5 ")

        # A digit picks a label other than the proposal.
        await pilot.press("1")
        await settle(pilot)
        assert stored(db_path)[5].response == "billing"
        assert isinstance(app.screen, DatasetScreen)

        # Skip 3 (billing, 0.9) to 6, which has no proposal, and write its answer.
        assert shown(queue, "#queue-where").startswith("Example 3 ")
        await pilot.press("s")
        assert shown(queue, "#queue-where").startswith("Example 6 ")
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditExampleScreen)
        assert editor.query_one("#edit-turn-0", TextArea).read_only
        answer = editor.query_one("#edit-turn-1", TextArea)
        assert answer.has_focus and answer.text == ""
        answer.text = "account"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, DatasetScreen)
        corrected = stored(db_path)[6]
        assert (corrected.response, corrected.status, corrected.source) == (
            "account",
            "approved",
            "labelled",
        )
        assert shown(queue, "#queue-counts") == "1 left to label · 3 labelled this session"
        assert shown(queue, "#queue-where").startswith("Example 3 ")

        # Undo takes back the last label: the row is unanswered again and shown again.
        await pilot.press("u")
        await settle(pilot)
        assert not stored(db_path)[6].answered
        assert stored(db_path)[6].source == "imported"
        assert shown(queue, "#queue-counts") == "2 left to label · 2 labelled this session"
        assert shown(queue, "#queue-where").startswith("Example 6 ")

        await pilot.press("escape")
        await settle(pilot)
        table = app.screen.query_one(ExamplesTable)
        assert table.has_focus and not queue.is_on_screen
        assert "2 to label (l; g proposes)" in shown(app.screen, "#dataset-summary")


async def test_the_queue_explains_keys_it_cannot_do_and_digits_never_leave(
    db_path: Path,
) -> None:
    app = TunesmithApp(db_path)
    notes: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        app.notify = lambda message, **kwargs: notes.append(message)  # type: ignore[method-assign]
        await pilot.press("l")
        # To 6, which has no proposal: the last row, one back from the first.
        await pilot.press("k")
        assert shown(panel(app), "#queue-where").startswith("Example 6 · 4 of 4")
        await pilot.press("a", "4", "3")
        await settle(pilot)
        assert notes[:2] == [
            "Example 6 has no proposal yet: pick a label with a digit or press e to write "
            "its answer.",
            "No label 4: the labels are 1-3.",
        ]
        assert isinstance(app.screen, DatasetScreen) and app.screen.labelling
        assert stored(db_path)[6].response == "account"
        # Skipping round the three left comes back to the first; accepting each empties it.
        await pilot.press("j", "j", "j")
        assert shown(panel(app), "#queue-where").startswith("Example 4 · 1 of 3")
        await pilot.press("a", "enter", "a")
        await settle(pilot)
        assert shown(panel(app), "#queue-where") == "Nothing left to label."
        assert shown(panel(app), "#queue-keys") == "u undo · Esc back to the table"
        assert "a" not in app.screen.active_bindings and "escape" in app.screen.active_bindings
        assert shown(panel(app), "#queue-counts") == "0 left to label · 4 labelled this session"
        assert sum(not e.answered for e in stored(db_path).values()) == 0


async def test_the_table_marks_rows_without_an_answer_and_refuses_to_approve_them(
    db_path: Path,
) -> None:
    app = TunesmithApp(db_path)
    notes: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        app.notify = lambda message, **kwargs: notes.append(message)  # type: ignore[method-assign]
        table = app.screen.query_one(ExamplesTable)
        responses = [table.get_row_at(row)[6] for row in range(6)]
        assert [cell.plain for cell in responses[2:]] == [
            "billing 90%",
            "bug 35%",
            "account 60%",
            "(no answer)",
        ]
        assert all("dim" in str(cell.spans[0].style) for cell in responses[2:])
        table.move_cursor(row=5)
        await pilot.pause()
        assert shown(app.screen, "#preview-response") == (
            "(no answer yet: l labels the rows without one)"
        )
        await pilot.press("k")
        assert shown(app.screen, "#preview-response") == (
            "(no answer yet) proposed: account (base, 60% sure)"
        )
        await pilot.press("a")
        await settle(pilot)
        assert notes == ["example 5 has no answer yet: label it before approving it"]
        assert stored(db_path)[5].status == "pending" and app.is_running


async def test_editing_a_row_without_an_answer_starts_from_its_proposal(db_path: Path) -> None:
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        app.screen.query_one(ExamplesTable).move_cursor(row=2)
        await pilot.press("e")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditExampleScreen)
        assert not editor.query_one("#edit-turn-0", TextArea).read_only
        assert editor.query_one("#edit-turn-1", TextArea).text == "billing"
        await pilot.press("ctrl+s")
        await settle(pilot)
        edited = stored(db_path)[3]
        # An edit gives the row its answer; approving it stays the person's call.
        assert (edited.response, edited.status, edited.source) == ("billing", "pending", "imported")


async def test_a_refused_label_puts_the_row_back_in_the_queue(db_path: Path) -> None:
    db = open_database(db_path)
    # Example 7 already is what labelling 5 (least confident after 4) "account" would make.
    add_examples(db, 1, [prompt_response("Cannot log in", "account")], source="typed")
    db.close()
    app = TunesmithApp(db_path)
    notes: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        app.notify = lambda message, **kwargs: notes.append(message)  # type: ignore[method-assign]
        await pilot.press("l", "s", "3")
        await settle(pilot)
        assert notes == ["example 7 already has exactly this conversation"]
        assert shown(panel(app), "#queue-where").startswith("Example 5 ")
        assert shown(panel(app), "#queue-counts") == "4 left to label · 0 labelled this session"
        assert not stored(db_path)[5].answered


def tiny_label_project(path: Path, model_dir: Path) -> Path:
    """``tickets`` on the tiny model: two approved labelled rows and three without an answer."""
    db = open_database(path)
    project = create_project(db, "tickets", base_model=str(model_dir))
    save_spec(db, project.id, TaskSpec(output_kind="labels", labels=LABELS))
    add_examples(
        db,
        project.id,
        [prompt_response("Charged twice", "billing"), prompt_response("Crash", "bug")],
        source="typed",
        split_mode="train",
    )
    inputs = ("I want a refund", "The app crashes", "Cannot log in")
    add_examples(
        db, project.id, [unlabeled_example(t) for t in inputs], source="imported", status="pending"
    )
    db.close()
    return path


async def test_g_has_the_base_model_propose_answers_as_it_goes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    db_path = tiny_label_project(tmp_path / "t.db", tiny_model_dir)
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        await pilot.press("g")
        await pilot.pause()
        assert shown(app.screen, "#dataset-work").startswith("Starting the labeller")
        await settle(pilot)
        rows = [e for e in stored(db_path).values() if not e.answered]
        assert len(rows) == 3
        assert all(r.proposed in LABELS and r.proposed_by == "base" for r in rows)
        assert all(r.confidence is not None and 0 < r.confidence <= 1 for r in rows)
        # Done: the work line is gone and the queue shows the least confident proposal first.
        assert not app.screen.query_one("#dataset-work").display
        await pilot.press("l")
        await settle(pilot)
        least = min(rows, key=lambda r: r.confidence or 0)
        assert shown(panel(app), "#queue-where").startswith(f"Example {least.id} · 1 of 3")


async def test_g_again_stops_the_labeller_and_keeps_what_it_stored(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    db_path = tiny_label_project(tmp_path / "t.db", tiny_model_dir)
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        await pilot.press("g")
        await pilot.pause()
        await pilot.press("g")
        await settle(pilot)
        assert not app.screen.query_one("#dataset-work").display
        # Stopped before the end: whatever it stored has a confidence; nothing half-written.
        for row in stored(db_path).values():
            assert (row.proposed is None) == (row.confidence is None)
