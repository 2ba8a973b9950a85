"""Fixtures of the trainer tests that load the tiny run's models in this process."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.database import open_database
from store.projects import get_project
from store.runs import get_run
from tests.conftest import TinyRun
from trainer.models import load_base_model
from trainer.serving.inference import ModelPool


@pytest.fixture(scope="module")
def tuned_name(completed_tiny_run: TinyRun) -> str:
    """The model name the tiny run answers as."""
    return f"run-{completed_tiny_run.run_id}"


@pytest.fixture(scope="module")
def pool(completed_tiny_run: TinyRun) -> ModelPool:
    """The tiny run's base model and adapter loaded in this process."""
    db = open_database(completed_tiny_run.db_path)
    project = get_project(db, completed_tiny_run.project)
    run = get_run(db, completed_tiny_run.run_id)
    assert run.adapter_path is not None
    model, tokenizer = load_base_model(project.base_model, on_status=lambda message: None)
    models = ModelPool(model, tokenizer)
    models.attach(f"run-{run.id}", Path(run.adapter_path))
    return models
