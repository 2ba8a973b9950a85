"""Projects: one per task, with its base model, system prompt and task spec."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from store.clock import now_iso
from store.errors import InputError, NotFoundError

DEFAULT_BASE_MODEL = "SmolLM2-135M-Instruct"
"""The base model a project gets when none is named: the embedded, offline one."""

_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Project:
    """A task being fine-tuned."""

    id: int
    name: str
    base_model: str
    system_prompt: str | None
    task_spec: dict[str, Any]
    created_at: str
    updated_at: str


def _project_from_row(row: dict[str, Any]) -> Project:
    return Project(
        id=row["id"],
        name=row["name"],
        base_model=row["base_model"],
        system_prompt=row["system_prompt"],
        task_spec=json.loads(row["task_spec"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def validate_project_name(name: str) -> str:
    """Return ``name`` if it is usable as a project name (it also names folders and files)."""
    if not _PROJECT_NAME.match(name):
        raise InputError(
            f"project name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def create_project(
    db: sqlite_utils.Database,
    name: str,
    *,
    base_model: str = DEFAULT_BASE_MODEL,
    system_prompt: str | None = None,
) -> Project:
    """Create a project; its name must be new."""
    validate_project_name(name)
    if not base_model.strip():
        raise InputError("--base-model: must not be empty")
    timestamp = now_iso()
    try:
        cursor = db.execute(
            "INSERT INTO projects (name, base_model, system_prompt, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [name, base_model.strip(), system_prompt, timestamp, timestamp],
        )
    except sqlite3.IntegrityError as error:
        raise InputError(f"project {name!r} already exists") from error
    project_id = cursor.lastrowid
    assert project_id is not None
    return get_project_by_id(db, project_id)


def list_projects(db: sqlite_utils.Database) -> list[Project]:
    """All projects, oldest first."""
    return [
        _project_from_row(row) for row in db.query("SELECT * FROM projects ORDER BY created_at, id")
    ]


def get_project(db: sqlite_utils.Database, name: str) -> Project:
    """The project called ``name``."""
    rows = list(db.query("SELECT * FROM projects WHERE name = ?", [name]))
    if not rows:
        known = ", ".join(project.name for project in list_projects(db)) or "none yet"
        raise NotFoundError(f"no project named {name!r} (projects: {known})")
    return _project_from_row(rows[0])


def get_project_by_id(db: sqlite_utils.Database, project_id: int) -> Project:
    """The project with id ``project_id``."""
    rows = list(db.query("SELECT * FROM projects WHERE id = ?", [project_id]))
    if not rows:
        raise NotFoundError(f"no project with id {project_id}")
    return _project_from_row(rows[0])


def set_task_spec(
    db: sqlite_utils.Database,
    project_id: int,
    task_spec: dict[str, Any],
    *,
    system_prompt: str | None,
) -> Project:
    """Replace the project's task spec and system prompt together, in one statement."""
    if system_prompt is not None and not system_prompt.strip():
        system_prompt = None
    cursor = db.execute(
        "UPDATE projects SET task_spec = ?, system_prompt = ?, updated_at = ? WHERE id = ?",
        [json.dumps(task_spec, ensure_ascii=False), system_prompt, now_iso(), project_id],
    )
    if not cursor.rowcount:
        raise NotFoundError(f"no project with id {project_id}")
    return get_project_by_id(db, project_id)


def set_system_prompt(
    db: sqlite_utils.Database, project_id: int, system_prompt: str | None
) -> Project:
    """Replace the project's system prompt (None or blank removes it)."""
    if system_prompt is not None and not system_prompt.strip():
        system_prompt = None
    cursor = db.execute(
        "UPDATE projects SET system_prompt = ?, updated_at = ? WHERE id = ?",
        [system_prompt, now_iso(), project_id],
    )
    if not cursor.rowcount:
        raise NotFoundError(f"no project with id {project_id}")
    return get_project_by_id(db, project_id)
