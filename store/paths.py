"""Where tunesmith keeps its files: one home folder, created private on first use."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from store.projects import DEFAULT_BASE_MODEL

DB_FILENAME = "tunesmith.db"


def home_dir() -> Path:
    """The tunesmith home: ``$TUNESMITH_HOME``, else the platform's user data dir."""
    configured = os.environ.get("TUNESMITH_HOME")
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_data_dir("tunesmith", appauthor=False))


def default_db_path() -> Path:
    """The database file: ``$TUNESMITH_DB``, else ``tunesmith.db`` in the home."""
    configured = os.environ.get("TUNESMITH_DB")
    if configured:
        return Path(configured).expanduser()
    return home_dir() / DB_FILENAME


def models_dir() -> Path:
    """Folder of converted base models."""
    return home_dir() / "models"


def embedded_model_dir() -> Path:
    """Folder of the embedded base model once converted (it may not exist yet)."""
    return models_dir() / DEFAULT_BASE_MODEL


def runs_dir() -> Path:
    """Folder holding one sub-folder per training run."""
    return home_dir() / "runs"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by the owner only, and return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
