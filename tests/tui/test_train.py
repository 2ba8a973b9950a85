"""The Train area's journeys: the new-run form, a real tiny run followed live to the end, the
history with results, and stop and resume, driven with Pilot."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Button, Input, ProgressBar

from store.database import open_database
from store.examples import add_examples
from store.projects import create_project
from store.runs import Run, finish_run, get_run, list_runs, set_costs
from tests.conftest import tiny_task_rows
from tests.tui.pilot import (
    SIZE,
    VALIDATED_OUTCOME,
    choose,
    demo_project,
    evaluate,
    evaluating_process,
    finished_run,
    settle,
    shown,
    wait_until,
)
from tui.app import TunesmithApp
from tui.dialogs.methods import MethodsScreen
from tui.dialogs.new_run import NewRunScreen, field_value, parse_value, shown_value
from tui.screens.train import TrainScreen
from tui.widgets.train.loss_chart import LossChart
from tui.widgets.train.runs_table import RunsTable


def capture_notes(app: TunesmithApp) -> list[tuple[str, dict[str, Any]]]:
    """Record the app's notifications instead of showing them."""
    notes: list[tuple[str, dict[str, Any]]] = []
    app.notify = lambda message, **kwargs: notes.append((message, kwargs))  # type: ignore[method-assign]
    return notes


def run_of(db_path: Path, run_id: int) -> Run:
    db = open_database(db_path)
    run = get_run(db, run_id)
    db.close()
    return run


async def test_a_real_tiny_run_is_followed_live_to_its_end(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    project = create_project(db, "colours", base_model=str(tiny_model_dir))
    add_examples(db, project.id, tiny_task_rows(12), source="imported", split_mode="train")
    add_examples(db, project.id, tiny_task_rows(14)[12:], source="imported", split_mode="eval")
    db.close()
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        notes = capture_notes(app)
        await choose(pilot, "colours")
        await pilot.press("3")
        await settle(pilot)
        assert "Press n to fine-tune on the 12 approved train examples and 2 eval" in shown(
            app.screen, "#run-message"
        )
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewRunScreen)
        form.query_one("#field-max_steps", Input).value = "3"
        form.query_one("#field-batch_size", Input).value = "4"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        run_id = screen.selected_run_id
        assert run_id is not None
        assert (
            notes[0][0] == f"Run {run_id} started. It trains in the background, even if you quit."
        )

        # Progress shows while the run trains in its own process, then the end is announced.
        bar = screen.query_one("#run-progress", ProgressBar)
        await wait_until(pilot, lambda: (bar.progress or 0) >= 1, "a step in the progress bar")
        await wait_until(
            pilot,
            lambda: any("completed" in note for note, _ in notes),
            "the notification that the run completed",
            timeout=90,
        )
        assert run_of(db_path, run_id).status == "completed"
        await wait_until(
            pilot, lambda: screen.query_one("#run-results").display, "the eval results"
        )
        assert "Held-out eval, 2 rows" in shown(screen, "#run-results")
        assert bar.progress == bar.total == 3
        assert "loss" in shown(screen, "#run-stats")
        assert "completed" in shown(screen, "#run-title")
        table = screen.query_one(RunsTable)
        assert [cell.plain for cell in table.get_row_at(0)][:2] == [str(run_id), "completed"]
        chart = screen.query_one(LossChart)
        assert "train" in chart.plt.build()
        assert "c: compare" in shown(screen, "#run-hint")


async def test_the_form_shows_the_picked_settings_and_why(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    demo_project(db_path)
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewRunScreen)
        # Four approved train rows: batch 1 (a quarter), 8 epochs, 32 steps.
        assert form.query_one("#field-batch_size", Input).value == "1"
        assert form.query_one("#field-max_steps", Input).value == "32"
        assert form.query_one("#field-learning_rate", Input).value == "1e-3"
        assert "8 passes" in shown(form, "#why-epochs")
        # Fewer epochs: the steps follow; the changed field says it was set by hand.
        form.query_one("#field-epochs", Input).value = "2"
        await pilot.pause()
        assert form.query_one("#field-max_steps", Input).value == "8"
        assert shown(form, "#why-epochs") == "set by you"
        assert form.overrides() == {"epochs": 2}
        # The budget reads as --budget does; auto leaves it to the data and this machine.
        budget = form.query_one("#field-budget_seconds", Input)
        assert budget.value == "auto"
        assert "the fixed epochs bound the run" in shown(form, "#why-budget_seconds")
        budget.value = "10m"
        await pilot.pause()
        assert form.overrides() == {"epochs": 2, "budget_seconds": 600}
        assert shown(form, "#why-budget_seconds") == "set by you"
        budget.value = "auto"
        await pilot.pause()
        assert form.overrides() == {"epochs": 2}
        # Another method: its learning rate follows, and it says what it costs.
        assert form.query_one("#field-method", Input).value == "lora"
        form.query_one("#field-method", Input).value = "full"
        await pilot.pause()
        assert form.query_one("#field-learning_rate", Input).value == "5e-5"
        assert shown(form, "#why-method").startswith("set by you: every weight trains")
        form.query_one("#field-method", Input).value = "lora"
        await pilot.pause()
        assert form.overrides() == {"epochs": 2}
        form.query_one("#field-learning_rate", Input).value = "fast"
        await pilot.pause()
        assert shown(form, "#why-learning_rate") == "Use a number such as 1e-3."
        assert form.query_one("#new-run-start", Button).disabled
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, TrainScreen)
    db = open_database(db_path)
    assert list_runs(db, 1) == []
    db.close()


async def test_tab_goes_round_the_forms_fields_and_the_rows_below_them_come_into_view(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "t.db"
    demo_project(db_path)
    app = TunesmithApp(db_path)
    # Short enough that the fields scroll.
    async with app.run_test(size=(80, 14)) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, NewRunScreen)
        fields = form.query_one("#new-run-fields")
        assert fields.max_scroll_y > 0
        await pilot.press("tab")
        assert getattr(app.focused, "id", None) == "new-run-cancel"
        # From Cancel, Tab goes round to the first field, not to the scroll area.
        await pilot.press("tab")
        assert getattr(app.focused, "id", None) == "field-method"
        await pilot.press("pagedown")
        assert fields.scroll_y > 0
        await pilot.press("pageup")
        assert fields.scroll_y == 0
        boxes = list(form.query("#new-run-fields Input"))
        for _ in boxes[1:]:
            await pilot.press("tab")
        await pilot.pause()
        assert app.focused is boxes[-1]
        # The derived rows under the last box are in view.
        assert fields.scroll_y == fields.max_scroll_y
        assert fields.region.contains_region(form.query_one("#value-warmup_steps").region)
        await pilot.press("escape")


async def test_history_lists_runs_with_results_and_errors(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    project = demo_project(db_path)
    completed = finished_run(db_path, project)
    evaluate(db_path, completed)
    failed = finished_run(
        db_path, project, status="failed", error="loss became NaN at step 4 [red]x[/]"
    )
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        table = screen.query_one(RunsTable)
        assert [[cell.plain for cell in table.get_row_at(row)] for row in range(2)] == [
            [str(failed.id), "failed", "6/6"],
            [str(completed.id), "completed", "33%→67%"],
        ]
        assert "failed: loss became NaN at step 4 [red]x[/]" in shown(screen, "#run-error")
        assert "r: resume from step 6" in shown(screen, "#run-hint")
        await pilot.press("j")
        await settle(pilot)
        assert screen.selected_run_id == completed.id
        results = shown(screen, "#run-results")
        assert "Held-out eval, 3 rows (base → 2-shot → tuned):" in results
        assert "exact match  33% → 67% → 67%" in results
        assert "No clear difference between tuned and few-shot on exact match" in results
        assert "loss 0.3333 · eval loss 0.4167 · 250 tok/s · ETA 0s" in shown(screen, "#run-stats")


async def test_a_run_that_validated_itself_shows_why_it_stopped_and_what_it_kept(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "t.db"
    project = demo_project(db_path)
    finished_run(db_path, project, validated=True)
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        assert "· kept step 3 ·" in shown(screen, "#run-title")
        assert shown(screen, "#run-outcome") == f"Outcome: {VALIDATED_OUTCOME}"
        # Its checks could have stopped it at any step: the ETA was only ever an upper bound.
        assert "eval loss 0.4167 · validation 0.75 · 250 tok/s · ETA ≤0s" in shown(
            screen, "#run-stats"
        )


async def test_stop_and_resume_ask_the_trainer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "t.db"
    project = demo_project(db_path)
    stopped = finished_run(db_path, project, status="stopped")
    calls: list[tuple[str, int]] = []

    def fake_resume(db: Any, path: Path, run_id: int) -> Run:
        calls.append(("resume", run_id))
        return get_run(db, run_id)

    def fake_stop(db: Any, run_id: int) -> Run:
        calls.append(("stop", run_id))
        return get_run(db, run_id)

    monkeypatch.setattr("tui.screens.train.resume_run", fake_resume)
    monkeypatch.setattr("tui.screens.train.request_stop", fake_stop)
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        notes = capture_notes(app)
        await choose(pilot, "reviews")
        await pilot.press("3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        assert screen.check_action("stop_run", ()) is False
        await pilot.press("r")
        await settle(pilot)
        assert calls == [("resume", stopped.id)]
        assert notes[-1][0].startswith(f"Run {stopped.id} resumes from step 6.")
        db = open_database(db_path)
        db.execute("UPDATE runs SET status = 'running' WHERE id = ?", [stopped.id])
        db.close()
        monkeypatch.setattr("tui.screens.train.refresh_runs", lambda db: [])
        await wait_until(
            pilot, lambda: screen.check_action("stop_run", ()) is True, "the poll to see it running"
        )
        await pilot.press("s")
        await settle(pilot)
        assert calls[-1] == ("stop", stopped.id)
        assert notes[-1][0] == f"Asked run {stopped.id} to stop; it saves a checkpoint first."


def test_form_values_are_checked_and_shown_plainly() -> None:
    from tui.dialogs.new_run import FIELDS

    method, epochs, learning_rate = FIELDS[0], FIELDS[1], FIELDS[2]
    assert parse_value(method, " DoRA ") == "dora"
    with pytest.raises(ValueError, match="one of lora, dora, rslora, ia3, prompt-tuning, full"):
        parse_value(method, "prefix")
    assert parse_value(epochs, " 3 ") == 3
    assert parse_value(learning_rate, "2e-4") == 2e-4
    for bad in ("0", "-1", "1.5", "x"):
        with pytest.raises(ValueError, match="whole number"):
            parse_value(epochs, bad)
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_value(learning_rate, "3")
    assert [shown_value(v) for v in (1e-3, 5e-5, 0.25, 16)] == ["1e-3", "5e-5", "0.25", "16"]
    budget = next(field for field in FIELDS if field.key == "budget_seconds")
    assert [parse_value(budget, typed) for typed in ("10m", "1h30m", "auto", "")] == [
        600,
        5400,
        0,
        0,
    ]
    for bad in ("soon", "0m", "10 minutes"):
        with pytest.raises(ValueError, match="a duration such as 90s, 10m or 1h30m, or auto"):
            parse_value(budget, bad)
    assert [field_value(budget, seconds) for seconds in (0, 600)] == ["auto", "10m00s"]


async def test_runs_training_from_before_are_picked_up_and_their_end_announced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "t.db"
    project = demo_project(db_path)
    run = finished_run(db_path, project, status="stopped")
    db = open_database(db_path)
    db.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE id = ?", [run.id])
    db.close()
    # The run's process is a stand-in: no pid to check, so nothing marks it interrupted.
    monkeypatch.setattr("tui.app.refresh_runs", lambda db: [])
    monkeypatch.setattr("tui.screens.train.refresh_runs", lambda db: [])
    monkeypatch.setattr("tui.app.RUN_WATCH_SECONDS", 0.2)
    app = TunesmithApp(db_path)
    bells: list[bool] = []
    # Before the app starts: its first look at the runs comes right after it mounts.
    notes = capture_notes(app)
    app.bell = lambda: bells.append(True)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await wait_until(pilot, lambda: bool(notes), "the picked-up notice")
        assert notes[0][0] == (
            f"Still training from before: run {run.id}. The Train area (3) follows it."
        )
        await pilot.press("3")
        await settle(pilot)
        assert "running" in shown(app.screen, "#run-title")
        db = open_database(db_path)
        finish_run(db, run.id, "failed", error="out of memory")
        db.close()
        await wait_until(pilot, lambda: len(notes) > 1, "the notice that the run ended")
        message, options = notes[1]
        assert message == f"Run {run.id} of reviews failed: out of memory"
        assert options["severity"] == "error" and options["title"] == "Training failed"
        assert bells == [True]
        await wait_until(pilot, lambda: "failed" in shown(app.screen, "#run-title"), "failed")


async def test_a_completed_run_whose_process_still_runs_shows_it_is_evaluating(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "t.db"
    project = demo_project(db_path)
    run = finished_run(db_path, project)
    with evaluating_process(db_path, run) as evaluator:
        app = TunesmithApp(db_path)
        async with app.run_test(size=SIZE) as pilot:
            await choose(pilot, "reviews")
            await pilot.press("3")
            await settle(pilot)
            table = app.screen.query_one(RunsTable)
            assert [cell.plain for cell in table.get_row_at(0)][1:] == ["completed", "evaluating…"]
            evaluator.kill()
            evaluator.wait()
            evaluate(db_path, run)
            await wait_until(
                pilot,
                lambda: [cell.plain for cell in table.get_row_at(0)][2] != "evaluating…",
                "the evaluation",
            )
            assert "→" in [cell.plain for cell in table.get_row_at(0)][2]


async def test_s_ends_the_evaluation_a_completed_run_is_running(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    project = demo_project(db_path)
    run = finished_run(db_path, project)
    with evaluating_process(db_path, run) as evaluator:
        app = TunesmithApp(db_path)
        async with app.run_test(size=SIZE) as pilot:
            notes = capture_notes(app)
            await choose(pilot, "reviews")
            await pilot.press("3")
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, TrainScreen)
            assert screen.check_action("stop_run", ()) is True
            await pilot.press("s")
            await wait_until(pilot, lambda: bool(notes), "the notice of the stop")
            assert notes[-1][0] == (
                f"Asked run {run.id} to stop evaluating itself; its adapter is kept."
            )
            assert evaluator.wait(timeout=10) == -signal.SIGTERM
            await wait_until(
                pilot, lambda: screen.check_action("stop_run", ()) is False, "the stop key off"
            )
            table = screen.query_one(RunsTable)
            assert [cell.plain for cell in table.get_row_at(0)][1:] == ["completed", "no eval"]
            assert run_of(db_path, run.id).status == "completed"


async def test_m_shows_every_completed_run_side_by_side(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    project = demo_project(db_path)
    lora = finished_run(db_path, project)
    evaluate(db_path, lora)
    db = open_database(db_path)
    set_costs(db, lora.id, trainable_parameters=4_884_480, peak_memory=3_000_000_000)
    db.close()
    finished_run(db_path, project, status="failed", error="out of memory")
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("m")
        await wait_until(pilot, lambda: isinstance(app.screen, MethodsScreen), "the methods table")
        text = shown(app.screen, "#methods-table")
        heading, row = text.splitlines()[:2]
        assert heading.split()[:3] == ["run", "method", "trainable"]
        # The completed run alone, with what it cost and its score with the interval.
        assert row.split()[:3] == [str(lora.id), "lora", "4.9M"]
        assert "3.0 GB" in row and "67% [" in row
        assert "failed" not in text
        assert shown(app.screen, "#methods-verdict").startswith("Best: lora")
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, TrainScreen)
