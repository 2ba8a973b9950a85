"""Starting, stopping and finding training runs from the app or the CLI (no torch here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlite_utils

from store.errors import InputError
from store.examples import list_examples
from store.paths import ensure_private_dir, home_dir, runs_dir
from store.projects import Project
from store.runs import (
    RESUMABLE_STATUSES,
    Run,
    create_run,
    get_run,
    mark_lost_runs_interrupted,
    set_dataset_hash,
    set_launched,
)
from trainer.config import Plan, plan_run
from trainer.snapshot import write_snapshot


def plan_for_project(
    db: sqlite_utils.Database, project: Project, overrides: dict[str, Any] | None = None
) -> Plan:
    """The config a run of ``project`` would use now, with the reason for each value."""
    train, evaluation = approved_rows(db, project)
    if not train:
        raise InputError(
            f"project {project.name!r} has no approved training examples; "
            f"import some: tunesmith examples import {project.name} FILE"
        )
    try:
        return plan_run(len(train), len(evaluation), overrides)
    except ValueError as error:
        raise InputError(str(error)) from error


def approved_rows(db: sqlite_utils.Database, project: Project) -> tuple[list[Any], list[Any]]:
    """The project's approved train-split and eval-split examples."""
    approved = [e for e in list_examples(db, project.id) if e.status == "approved"]
    return [e for e in approved if e.split == "train"], [e for e in approved if e.split == "eval"]


def start_run(db: sqlite_utils.Database, db_path: Path, project: Project, plan: Plan) -> Run:
    """Freeze the approved rows into a new run's folder and start its process, detached."""
    return _launch(db, db_path, prepare_run(db, project, plan), resume=False)


def prepare_run(db: sqlite_utils.Database, project: Project, plan: Plan) -> Run:
    """Create a queued run and freeze the project's approved rows into its folder."""
    train, evaluation = approved_rows(db, project)
    ensure_private_dir(home_dir())
    root = ensure_private_dir(runs_dir())
    run = create_run(
        db,
        project.id,
        config=plan.config.to_dict(),
        dataset_hash="",
        dataset_size=len(train),
        runs_root=root,
    )
    assert run.run_dir is not None
    run_dir = ensure_private_dir(Path(run.run_dir))
    snapshot = write_snapshot(run_dir, train, evaluation)
    set_dataset_hash(db, run.id, snapshot.digest)
    return get_run(db, run.id)


def resume_run(db: sqlite_utils.Database, db_path: Path, run_id: int) -> Run:
    """Start a stopped, interrupted or failed run again from its last complete checkpoint."""
    refresh_runs(db)
    run = get_run(db, run_id)
    if run.status not in RESUMABLE_STATUSES:
        raise InputError(
            f"run {run_id} is {run.status}; only stopped, interrupted or failed runs resume"
        )
    return _launch(db, db_path, run, resume=True)


def stop_run(db: sqlite_utils.Database, run_id: int) -> Run:
    """Ask a run to stop: it finishes its step, saves a checkpoint and ends ``stopped``."""
    refresh_runs(db)
    run = get_run(db, run_id)
    if run.status not in ("queued", "running") or run.pid is None:
        raise InputError(f"run {run_id} is {run.status}, not running")
    os.kill(run.pid, signal.SIGTERM)
    return run


def refresh_runs(db: sqlite_utils.Database) -> list[int]:
    """Mark runs whose process is gone as interrupted; return their ids."""
    return mark_lost_runs_interrupted(db, is_run_process_alive)


def is_run_process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) tunesmith training process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    # A zombie has already exited; a reused pid runs some other program. The command line
    # reads empty for a moment while a just-started process is still exec-ing.
    return state != "Z" and (not command or b"trainer.run" in command)


def _launch(db: sqlite_utils.Database, db_path: Path, run: Run, *, resume: bool) -> Run:
    assert run.run_dir is not None and run.log_path is not None
    command = [sys.executable, "-m", "trainer.run", "--db", str(db_path), "--run-id", str(run.id)]
    if resume:
        command.append("--resume")
    log_fd = os.open(run.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            # Its own session: closing the terminal or pressing Ctrl-C here does not reach it.
            start_new_session=True,
            close_fds=True,
            cwd=run.run_dir,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "TOKENIZERS_PARALLELISM": "false",
                # Progress bars would fill the log file with carriage-return noise.
                "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                "TQDM_DISABLE": "1",
            },
        )
    finally:
        os.close(log_fd)
    set_launched(db, run.id, pid=process.pid)
    return get_run(db, run.id)
