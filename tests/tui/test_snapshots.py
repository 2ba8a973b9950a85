"""Screenshots of every screen at 80x24 (each area empty, populated and failing), compared with
the accepted ones in __snapshots__.

After a deliberate change of the look, accept the new pictures with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and review the SVG diffs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from store.database import open_database
from store.errors import ModelError, TunesmithError
from store.examples import (
    NewExample,
    add_examples,
    prompt_response,
    set_proposal,
    unlabeled_example,
)
from store.projects import Project, create_project, get_project
from tests.tui.pilot import evaluate, finished_run, settle
from trainer.control.launch import ServerHandle
from tui.app import TunesmithApp
from tui.widgets.compare.prompt_box import PromptBox

SnapCompare = Callable[..., bool]

DEMO_ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Great phone, the battery easily lasts two days.",
        '{"sentiment": "positive", "topic": "battery"}',
        ("battery",),
    ),
    (
        "Screen cracked after a week and support never answered.",
        '{"sentiment": "negative", "topic": "support"}',
        ("support", "negative"),
    ),
    ("Arrived on time. Does what it says.", '{"sentiment": "neutral", "topic": "delivery"}', ()),
    ("Camera is superb in daylight,\nbut noisy at night.", '{"sentiment": "mixed"}', ("camera",)),
    ("[@click=app.quit]click me[/]", "markup in data stays text [/]", ("hostile",)),
    ("\x1b[31mred?\x1b[0m no: escapes are stripped", '{"sentiment": "neutral"}', ("hostile",)),
)
"""Demo examples of the project ``reviews``, two of them hostile on purpose."""


@pytest.fixture(autouse=True)
def private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every file the app might write inside the test's folder."""
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TUNESMITH_DB", raising=False)


@pytest.fixture
def demo_db(tmp_path: Path) -> Path:
    """A database with the projects ``reviews`` (the demo rows) and ``haiku`` (empty)."""
    path = tmp_path / "demo.db"
    db = open_database(path)
    reviews = create_project(db, "reviews")
    create_project(db, "haiku", base_model="HuggingFaceTB/SmolLM2-360M-Instruct")
    demo = [
        NewExample(messages=prompt_response(prompt, response).messages, tags=tags)
        for prompt, response, tags in DEMO_ROWS
    ]
    add_examples(db, reviews.id, demo[:3], source="imported", split_mode="train")
    add_examples(db, reviews.id, demo[3:4], source="typed", split_mode="eval")
    add_examples(db, reviews.id, demo[4:], source="drafted", split_mode="train", status="pending")
    db.close()
    return path


def open_then(*keys: str, project: str = "reviews") -> Callable[[Pilot[Any]], Any]:
    """A ``run_before`` that opens ``project`` from the picker, then presses ``keys``."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        if project != "reviews":
            await pilot.press("j")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    return run_before


def open_reviews_then(*keys: str) -> Callable[[Pilot[Any]], Any]:
    """A ``run_before`` that opens ``reviews`` from the picker, then presses ``keys``."""
    return open_then(*keys)


@pytest.fixture
def trained_db(demo_db: Path) -> Path:
    """The demo database with a completed, evaluated run of ``reviews`` and a failed one."""
    db = open_database(demo_db)
    project = get_project(db, "reviews")
    db.close()
    completed = finished_run(demo_db, project)
    evaluate(demo_db, completed)
    finished_run(demo_db, project, status="failed", error="loss became NaN at step 4")
    return demo_db


def test_picker(snap_compare: SnapCompare, demo_db: Path) -> None:
    assert snap_compare(TunesmithApp(demo_db), run_before=settle)


def test_picker_on_an_empty_database(snap_compare: SnapCompare, tmp_path: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.screen.query_one(Input).cursor_blink = False

    path = tmp_path / "empty.db"
    open_database(path).close()
    assert snap_compare(TunesmithApp(path), run_before=run_before)


def test_picker_with_a_refused_name(snap_compare: SnapCompare, demo_db: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.screen.query_one(Input).cursor_blink = False
        await pilot.press("tab", *"no spaces [b]please[/b]", "enter")
        await settle(pilot)

    assert snap_compare(TunesmithApp(demo_db), run_before=run_before)


def test_dataset(snap_compare: SnapCompare, demo_db: Path) -> None:
    assert snap_compare(TunesmithApp(demo_db), run_before=open_reviews_then("j"))


def test_dataset_without_a_project(snap_compare: SnapCompare, demo_db: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)

    assert snap_compare(TunesmithApp(demo_db), run_before=run_before)


def test_dataset_empty(snap_compare: SnapCompare, demo_db: Path) -> None:
    assert snap_compare(TunesmithApp(demo_db), run_before=open_then("f3", project="haiku"))


def test_dataset_error(
    snap_compare: SnapCompare, demo_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise TunesmithError("database disk image is malformed", title="Database")

    monkeypatch.setattr("tui.screens.dataset.example_counts", unreadable)
    assert snap_compare(TunesmithApp(demo_db), run_before=open_reviews_then())


def test_dataset_selection_and_filter(snap_compare: SnapCompare, demo_db: Path) -> None:
    assert snap_compare(
        TunesmithApp(demo_db), run_before=open_reviews_then("space", "space", "slash", "a")
    )


@pytest.fixture
def unlabeled_db(demo_db: Path) -> Path:
    """The demo database with three reviews of ``reviews`` that came without an answer: two
    with a proposal (one hostile), one without."""
    db = open_database(demo_db)
    project = get_project(db, "reviews")
    inputs = ("Battery died after a day [b]not bold[/b]", "Love it", "Where is my order?")
    unlabeled = [unlabeled_example(text) for text in inputs]
    add_examples(db, project.id, unlabeled, source="imported", split_mode="train", status="pending")
    # Ids 7 and 8: after the six demo rows.
    set_proposal(db, 7, '{"sentiment": "negative", "topic": "battery"} [/]', 0.41, "base")
    set_proposal(db, 8, '{"sentiment": "positive"}', 0.93, "run-1")
    db.close()
    return demo_db


def test_dataset_unlabeled_rows(snap_compare: SnapCompare, unlabeled_db: Path) -> None:
    assert snap_compare(TunesmithApp(unlabeled_db), run_before=open_reviews_then(*"jjjjjj"))


def test_dataset_labelling_queue(snap_compare: SnapCompare, unlabeled_db: Path) -> None:
    assert snap_compare(TunesmithApp(unlabeled_db), run_before=open_reviews_then("l"))


def test_edit_dialog(snap_compare: SnapCompare, demo_db: Path) -> None:
    assert snap_compare(TunesmithApp(demo_db), run_before=open_reviews_then("j", "j", "j", "e"))


def chat_then(*messages: str, keys: tuple[str, ...] = ()) -> Callable[[Pilot[Any]], Any]:
    """A ``run_before`` that opens ``reviews`` on Chat, presses ``keys``, sends ``messages``."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await open_reviews_then("1", *keys)(pilot)
        box = pilot.app.screen.query_one("#chat-input", PromptBox)
        box.cursor_blink = False
        for message in messages:
            box.text = message
            await pilot.press("enter")
            await settle(pilot)

    return run_before


def test_chat_new_project(snap_compare: SnapCompare, demo_db: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_then(project="haiku")(pilot)
        pilot.app.screen.query_one("#chat-input", PromptBox).cursor_blink = False

    assert snap_compare(TunesmithApp(demo_db), run_before=run_before)


def test_chat_interview(snap_compare: SnapCompare, demo_db: Path) -> None:
    messages = ("sort product reviews by sentiment [b]and[/b] topic", "one product review")
    assert snap_compare(TunesmithApp(demo_db), run_before=chat_then(*messages))


def test_chat_models_error(snap_compare: SnapCompare, trained_db: Path) -> None:
    app = TunesmithApp(trained_db, server_starter=refusing_server)
    run_before = chat_then("Meh. [b]not bold[/b]", keys=("ctrl+t", "ctrl+t"))
    assert snap_compare(app, run_before=run_before)


def test_train_empty(snap_compare: SnapCompare, demo_db: Path) -> None:
    assert snap_compare(TunesmithApp(demo_db), run_before=open_reviews_then("3"))


def test_train_new_run_form(snap_compare: SnapCompare, demo_db: Path) -> None:
    assert snap_compare(TunesmithApp(demo_db), run_before=open_reviews_then("3", "n"))


def test_train_completed_run(snap_compare: SnapCompare, trained_db: Path) -> None:
    assert snap_compare(TunesmithApp(trained_db), run_before=open_reviews_then("3", "j"))


def test_train_failed_run(snap_compare: SnapCompare, trained_db: Path) -> None:
    assert snap_compare(TunesmithApp(trained_db), run_before=open_reviews_then("3"))


def test_compare_empty(snap_compare: SnapCompare, demo_db: Path) -> None:
    assert snap_compare(TunesmithApp(demo_db), run_before=open_reviews_then("4"))


def test_compare_evaluation(snap_compare: SnapCompare, trained_db: Path) -> None:
    assert snap_compare(TunesmithApp(trained_db), run_before=open_reviews_then("4", "j"))


def test_compare_blind(
    snap_compare: SnapCompare, trained_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Which side is tuned is random per session; fixed here so the picture is stable.
    monkeypatch.setattr("tui.compare_answers.secrets.randbits", lambda bits: 7)
    app = TunesmithApp(trained_db)
    app.services.servers.starter = refusing_server
    assert snap_compare(app, run_before=open_reviews_then("4", "v"))


def refusing_server(db_path: Path, project: Project, on_status: Any) -> ServerHandle:
    """A model server start that fails the way a missing model does."""
    raise ModelError(f"The base model of project {project.name} is not on this machine")


def test_compare_error(snap_compare: SnapCompare, trained_db: Path) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await open_reviews_then("4", "tab")(pilot)
        box = pilot.app.screen.query_one(PromptBox)
        box.text = "Meh. [b]not bold[/b]"
        box.cursor_blink = False
        await pilot.press("enter")
        await settle(pilot)

    app = TunesmithApp(trained_db, server_starter=refusing_server)
    assert snap_compare(app, run_before=run_before)


def test_help(snap_compare: SnapCompare, demo_db: Path) -> None:
    assert snap_compare(TunesmithApp(demo_db), run_before=open_reviews_then("question_mark"))
