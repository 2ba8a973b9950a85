"""What tests of real runs share: a tiny project, faulted launches, waits, a small disk."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from store.database import open_database
from store.examples import add_examples
from store.projects import Project, create_project
from store.runs import Run, get_run, set_launched
from tests.conftest import tiny_task_rows
from trainer.control.jobs import refresh_runs
from trainer.control.process import child_command, child_environment

RUN_TIMEOUT_SECONDS = 120.0
"""Longest wait for a tiny run to reach a state (it takes seconds)."""


def tiny_project(
    db_path: Path, model_dir: Path, rows: int = 16
) -> tuple[sqlite_utils.Database, Project]:
    """A database with a project on the tiny model and ``rows`` approved train rows."""
    db = open_database(db_path)
    project = create_project(db, "colours", base_model=str(model_dir))
    add_examples(db, project.id, tiny_task_rows(rows), source="imported", split_mode="train")
    return db, project


def launch_run(
    db: sqlite_utils.Database, db_path: Path, run: Run, *, fault: str, resume: bool = False
) -> subprocess.Popen[bytes]:
    """Start ``run`` detached, as ``trainer.control.jobs`` does, through the fault wrapper."""
    assert run.run_dir is not None and run.log_path is not None
    run_arguments = ["--db", str(db_path), "--run-id", str(run.id)] + (
        ["--resume"] if resume else []
    )
    command = child_command(
        "tests.reliability.fault_run", [fault, "trainer.training.run", *run_arguments]
    )
    log_fd = os.open(run.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=run.run_dir,
            env=child_environment(),
        )
    finally:
        os.close(log_fd)
    set_launched(db, run.id, pid=process.pid)
    return process


@contextmanager
def launched(
    db: sqlite_utils.Database, db_path: Path, run: Run, *, fault: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A run started through the fault wrapper, killed on the way out if it still runs."""
    process = launch_run(db, db_path, run, fault=fault)
    try:
        yield process
    finally:
        kill_if_running(process)


def wait_for(
    db: sqlite_utils.Database,
    run_id: int,
    condition: Callable[[Run], bool],
    what: str,
    *,
    poll_seconds: float = 0.1,
) -> Run:
    """Poll the run row (marking lost processes) until ``condition`` holds."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        refresh_runs(db)
        run = get_run(db, run_id)
        if condition(run):
            return run
        time.sleep(poll_seconds)
    raise AssertionError(f"timed out waiting for {what}; run is {run}\n{run_log(run)[-3000:]}")


def wait_until_paused(process: subprocess.Popen[bytes]) -> None:
    """Wait until ``process`` has stopped itself with SIGSTOP."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process {process.pid} ended ({process.returncode}) unpaused")
        stat = Path(f"/proc/{process.pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] in ("T", "t"):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {process.pid} never paused")


def run_log(run: Run) -> str:
    """What the run's process wrote so far."""
    if run.log_path is None or not Path(run.log_path).exists():
        return ""
    return Path(run.log_path).read_text(encoding="utf-8", errors="replace")


def integrity_ok(db_path: Path) -> bool:
    """Whether SQLite finds the database file sound (a fresh connection, as a new process would)."""
    connection = sqlite3.connect(db_path)
    try:
        return bool(connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)])
    finally:
        connection.close()


@contextmanager
def small_disk(mount_point: Path, size_bytes: int) -> Iterator[bool]:
    """A tmpfs of ``size_bytes`` at ``mount_point`` where the machine lets us mount one.

    Yields whether it is mounted; without it (no root, no CAP_SYS_ADMIN) tests inject ENOSPC.
    """
    mount_point.mkdir(parents=True, exist_ok=True)
    options = f"size={size_bytes},mode=0700"
    try:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
    except OSError:
        mounted = False
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def fill_disk(folder: Path, leave_bytes: int) -> Path:
    """Take all but about ``leave_bytes`` of the free space of ``folder``'s file system."""
    filler = folder / "filler"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with filler.open("wb") as handle:
        os.posix_fallocate(handle.fileno(), 0, max(0, free - leave_bytes))
    return filler


def kill_if_running(process: subprocess.Popen[bytes]) -> None:
    """Kill a process this test started, if it still runs, and reap it."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
