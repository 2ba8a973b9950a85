"""The Compare area's journeys: both models answer a prompt (a real server of the tiny run),
the eval table sorts by gain, blind A/B votes are stored, a tuned answer becomes an example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static, TextArea

from agent.models import AGENT_BASE_URL_ENV, AGENT_MODEL_ENV
from store.database import open_database
from store.errors import ModelError
from store.evals import latest_evaluation, stored_evaluation_items
from store.examples import list_examples
from store.projects import Project
from tests.conftest import TinyRun
from tests.openai_stand_in import stand_in_endpoint
from tests.tui.pilot import (
    ANSI_TEXT,
    CLICK_TEXT,
    SIZE,
    choose,
    copy_database,
    demo_project,
    evaluate,
    evaluating_process,
    finished_run,
    settle,
    shown,
    wait_until,
)
from trainer.control.launch import ServerHandle
from tui.app import TunesmithApp
from tui.dialogs.edit_example import EditExampleScreen
from tui.screens.compare import CompareScreen
from tui.widgets.compare.eval_table import EvalTable
from tui.widgets.compare.prompt_box import PromptBox


def pane_text(screen: Any, side: str) -> str:
    """What the left or right answer pane shows."""
    pane = screen.query_one(f"#compare-{side}")
    return str(pane.query_one(".answer-text", Static).render())


async def ask(pilot: Any, prompt: str) -> None:
    """Type ``prompt`` in the prompt box and send it."""
    await pilot.press("tab")
    box = pilot.app.screen.query_one(PromptBox)
    assert box.has_focus
    box.text = prompt
    await pilot.press("enter")


async def test_base_and_tuned_answer_side_by_side(
    completed_tiny_run: TinyRun, tmp_path: Path
) -> None:
    db_path = copy_database(completed_tiny_run.db_path, tmp_path / "copy.db")
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "colours")
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert screen.run_id == completed_tiny_run.run_id
        await ask(pilot, "Name colour number 3.")
        free = screen._free
        assert free is not None
        await wait_until(pilot, lambda: free.done == {"base", "tuned"}, "both answers", 120)
        await settle(pilot)
        assert not free.errors
        base, tuned = pane_text(screen, "left"), pane_text(screen, "right")
        assert base and tuned and base != tuned
        assert base == free.texts["base"].replace("\x1b", "")
        assert screen.query_one("#compare-left").border_title == "base"
        assert screen.query_one("#compare-right").border_title == (
            f"tuned · run {completed_tiny_run.run_id}"
        )
        running = app.services.servers.running
        assert running is not None and running.handle.api_key
        assert running.handle.base_url.startswith("http://127.0.0.1:")
        process = running.handle.process

        # The tuned answer, corrected, becomes a new example.
        await pilot.press("escape", "f")
        await settle(pilot)
        editor = app.screen
        assert isinstance(editor, EditExampleScreen)
        assert editor.query_one("#edit-turn-0", TextArea).text == "Name colour number 3."
        editor.query_one("#edit-turn-1", TextArea).text = "black, of course"
        await pilot.press("ctrl+s")
        await settle(pilot)
    # Quitting the app stops the server it started.
    assert process.poll() is not None
    db = open_database(db_path)
    added = [e for e in list_examples(db, 1) if e.source == "from-compare"]
    db.close()
    assert [(e.prompt, e.response, e.status, e.split) for e in added] == [
        ("Name colour number 3.", "black, of course", "approved", "train")
    ]


async def test_a_blind_vote_on_a_typed_prompt_is_stored_with_that_prompt(
    completed_tiny_run: TinyRun, tmp_path: Path
) -> None:
    db_path = copy_database(completed_tiny_run.db_path, tmp_path / "copy.db")
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "colours")
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        await pilot.press("v")
        assert screen.blind
        await ask(pilot, "Name colour number 3.")
        free = screen._free
        assert free is not None
        await wait_until(pilot, lambda: free.done == {"base", "tuned"}, "both answers", 120)
        await settle(pilot)
        # Out of the box, on the eval rows, the panes still show the typed prompt's answers:
        # the vote is theirs, not the highlighted row's.
        await pilot.press("escape")
        assert screen.check_action("vote", ("a",)) is True
        await pilot.press("a")
        await settle(pilot)
        assert screen.check_action("vote", ("a",)) is False
        assert "typed: " in shown(screen, "#compare-summary")
    db = open_database(db_path)
    votes = list(db.query("SELECT * FROM prompt_votes"))
    evaluation = latest_evaluation(db, completed_tiny_run.run_id)
    assert evaluation is not None
    item_votes = [item.preference for item in stored_evaluation_items(db, evaluation.id)]
    db.close()
    assert [(v["run_id"], v["prompt"], v["preference"]) for v in votes] == [
        (completed_tiny_run.run_id, "Name colour number 3.", "tuned" if free.tuned_is_a else "base")
    ]
    assert votes[0]["tuned_output"] == free.texts["tuned"]
    assert set(item_votes) == {None}


@pytest.fixture
def evaluated(tmp_path: Path) -> tuple[Path, int]:
    """A project with one completed run and its three-item evaluation."""
    db_path = tmp_path / "t.db"
    project = demo_project(db_path)
    run = finished_run(db_path, project)
    evaluate(db_path, run)
    return db_path, run.id


async def test_eval_rows_sort_by_gain_and_show_in_the_panes(evaluated: tuple[Path, int]) -> None:
    db_path, _ = evaluated
    app = TunesmithApp(db_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        table = screen.query_one(EvalTable)
        assert table.has_focus
        assert "exact match base 33% · few-shot 67% · tuned 67% on 3 held-out rows" in shown(
            screen, "#compare-summary"
        )
        assert [shown_item.gain for shown_item in table.items] == [1.0, -1.0, 1.0]
        await pilot.press("o")
        assert [shown_item.stored.item.prompt for shown_item in table.items][:2] == [
            "Meh.",
            CLICK_TEXT,
        ]
        await pilot.press("o")
        assert table.items[0].stored.item.prompt == "So good!"
        assert pane_text(screen, "left") == "positive"
        assert pane_text(screen, "right") == "negative"
        assert "reference: positive" in shown(screen, "#compare-context")
        await pilot.press("o", "j", "j")
        # Hostile answers stay text: shown literally, control characters stripped.
        assert pane_text(screen, "left") == "[31mred[0m and a bell"
        assert pane_text(screen, "right") == "[/] negative"
        assert CLICK_TEXT in shown(screen, "#compare-context")
        assert app.is_running


async def test_an_evaluation_that_lands_while_compare_is_open_shows(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    project = demo_project(db_path)
    run = finished_run(db_path, project)
    with evaluating_process(db_path, run):
        app = TunesmithApp(db_path)
        async with app.run_test(size=SIZE) as pilot:
            await choose(pilot, "reviews")
            await pilot.press("4")
            await settle(pilot)
            screen = app.screen
            assert "evaluating itself" in shown(screen, "#compare-summary")
            assert "Answering the eval rows" in shown(screen, "#compare-eval-title")
            evaluate(db_path, run)
            await wait_until(
                pilot,
                lambda: "held-out rows" in shown(screen, "#compare-summary"),
                "the evaluation",
            )
            await wait_until(pilot, lambda: bool(screen.query_one(EvalTable).items), "its rows")
            assert len(screen.query_one(EvalTable).items) == 3


async def test_e_sets_the_few_shot_answer_against_tuned(evaluated: tuple[Path, int]) -> None:
    db_path, _ = evaluated
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        left = screen.query_one("#compare-left")
        # Row 1, "Meh.": base said positive, few-shot neutral (the reference), tuned neutral.
        assert (left.border_title, pane_text(screen, "left")) == ("base · score 0.00", "positive")
        await pilot.press("e")
        assert (left.border_title, pane_text(screen, "left")) == (
            "base · few-shot · score 1.00",
            "neutral",
        )
        await pilot.press("j")
        assert pane_text(screen, "left") == "positive"
        assert left.border_title == "base · few-shot · score 1.00"
        # Blind votes stay between tuned and the zero-shot base.
        await pilot.press("v")
        assert screen.check_action("few_shot", ()) is False
        answers = {pane_text(screen, side) for side in ("left", "right")}
        assert answers == {"positive", "negative"}
        await pilot.press("v", "e")
        assert left.border_title == "base · score 1.00"


async def test_m_shows_the_whole_evaluation_and_the_rows_again(
    evaluated: tuple[Path, int],
) -> None:
    db_path, _ = evaluated
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        await pilot.press("m")
        await settle(pilot)
        report = shown(screen, "#compare-report-text")
        assert report.splitlines()[0].split()[:4] == ["metric", "base", "few-shot", "tuned"]
        assert "Few-shot: the base model shown 2 examples from the train split." in report
        assert "No clear difference between tuned and base on exact match" in report
        assert not screen.query_one(EvalTable).display
        assert "m shows its rows again" in shown(screen, "#compare-eval-title")
        await pilot.press("m")
        await settle(pilot)
        assert screen.query_one(EvalTable).display
        assert not screen.query_one("#compare-report").display


async def test_blind_votes_are_recorded_as_base_or_tuned(evaluated: tuple[Path, int]) -> None:
    db_path, run_id = evaluated
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        table = screen.query_one(EvalTable)
        await pilot.press("v")
        assert screen.blind
        assert table.ordered_columns[2].label.plain == "A"
        first = table.items[0]
        titles = [screen.query_one(f"#compare-{s}").border_title for s in ("left", "right")]
        assert titles == ["A", "B"]
        a_text = pane_text(screen, "left")
        expected = "tuned" if first.tuned_is_a else "base"
        assert a_text == (first.stored.item.tuned_output if first.tuned_is_a else "positive")
        await pilot.press("a")
        await settle(pilot)
        assert table.cursor_row == 1
        await pilot.press("equals_sign")
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        db = open_database(db_path)
        evaluation = latest_evaluation(db, run_id)
        assert evaluation is not None
        preferences = [item.preference for item in stored_evaluation_items(db, evaluation.id)]
        db.close()
        third = table.items[2]
        assert preferences == [expected, "tie", "base" if third.tuned_is_a else "tuned"]
        assert "you preferred" in shown(screen, "#compare-summary")
        # f is off in blind mode: it would show which answer is the tuned one.
        assert screen.check_action("fix", ()) is False
        await pilot.press("v")
        assert [cell.plain for cell in table.get_row_at(1)][4] == "tie"


async def test_a_server_that_cannot_start_is_an_error_in_both_panes(
    evaluated: tuple[Path, int],
) -> None:
    db_path, _ = evaluated

    def broken(db_path: Path, project: Project, on_status: Any) -> ServerHandle:
        on_status("converting the model [b]x[/b]")
        raise ModelError("The model server for project reviews exited with code 2: no weights")

    app = TunesmithApp(db_path, server_starter=broken)
    async with app.run_test(size=SIZE) as pilot:
        notes: list[str] = []
        app.notify = lambda message, **kwargs: notes.append(message)  # type: ignore[method-assign]
        await choose(pilot, "reviews")
        await pilot.press("4")
        await settle(pilot)
        await ask(pilot, "Meh.")
        await settle(pilot)
        screen = app.screen
        for side in ("left", "right"):
            assert pane_text(screen, side) == (
                "No answer: The model server for project reviews exited with code 2: no weights"
            )
        assert notes == ["The model server for project reviews exited with code 2: no weights"]
        assert app.is_running


async def test_without_a_trained_run_the_base_model_answers_alone(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    demo_project(db_path)
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert "No trained run yet: start one in Train (3)" in shown(screen, "#compare-summary")
        assert pane_text(screen, "right") == "No tuned model yet: train a run in Train (3)."
        assert not screen.query_one(EvalTable).display
        assert ANSI_TEXT not in app.export_screenshot()


async def test_shift_j_judges_the_evaluation_with_the_agents_model_and_esc_stops_it(
    evaluated: tuple[Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path, run_id = evaluated
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        notes: list[str] = []
        app.notify = lambda message, **kwargs: notes.append(message)  # type: ignore[method-assign]
        await choose(pilot, "reviews")
        await pilot.press("4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)

        # No agent model: the error says what to set, and J can be pressed again.
        await pilot.press("J")
        await wait_until(pilot, lambda: bool(notes), "the error")
        assert notes[-1].startswith(
            f"no model to judge with: the agent's model judges; set {AGENT_MODEL_ENV}"
        )
        await wait_until(pilot, lambda: screen.check_action("judge", ()) is True, "J again")

        with stand_in_endpoint() as stand_in:
            monkeypatch.setenv(AGENT_BASE_URL_ENV, stand_in.base_url)
            monkeypatch.setenv(AGENT_MODEL_ENV, "grader")
            stand_in.answers = ['{"grade": 5, "rationale": "Right."}']
            stand_in.delay = 0.2
            # Stopped after its first answers: nothing is stored.
            await pilot.press("J")
            await wait_until(
                pilot,
                lambda: f"Judging run {run_id}: judged 1/9" in shown(screen, "#compare-eval-title"),
                "progress",
            )
            assert shown(screen, "#compare-eval-title").endswith(" · esc stops")
            assert screen.check_action("judge", ()) is False
            await pilot.press("escape")
            await wait_until(pilot, lambda: "Judging stopped; nothing was stored." in notes, "stop")
            assert len(stand_in.requests) < 9
            db = open_database(db_path)
            evaluation = latest_evaluation(db, run_id)
            assert evaluation is not None and evaluation.judge is None

            # Judged to the end: stored, told, and in the report.
            stand_in.delay = 0.0
            await pilot.press("J")
            await wait_until(pilot, lambda: any("scored" in note for note in notes), "the verdict")
            evaluation = latest_evaluation(db, run_id)
            db.close()
        assert evaluation is not None and evaluation.judge is not None
        assert evaluation.judge.means == {"base": 1.0, "few_shot": 1.0, "tuned": 1.0}
        assert notes[-1] == (
            f"grader at {stand_in.base_url} scored base 100.0% · few-shot 100.0% · tuned"
            " 100.0%; m shows the report."
        )
        assert screen.check_action("judge", ()) is False
        await pilot.press("m")
        await settle(pilot)
        assert "judge" in shown(screen, "#compare-report-text")
