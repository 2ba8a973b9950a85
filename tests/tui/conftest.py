"""Databases the app's journeys start from."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.database import open_database
from store.examples import NewExample, add_examples, prompt_response
from store.projects import create_project
from tests.tui.pilot import ANSI_TEXT, CLICK_TEXT, CLOSING_TAG_TEXT


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
            prompt_response(CLICK_TEXT, "[@click=app.quit]y[/]"),
            prompt_response(CLOSING_TAG_TEXT, "[bold]not bold[/bold]"),
            prompt_response(ANSI_TEXT, "\x1b]0;retitled\x07plain"),
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
