"""Starting, stopping and finding training runs from the app or the CLI (no torch here)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlite_utils

from store.atomic import atomic_text_file
from store.errors import InputError
from store.evals import latest_evaluation
from store.examples import ExampleRows, example_ids
from store.paths import ensure_private_dir, home_dir, runs_dir
from store.projects import Project
from store.runs import (
    ACTIVE_STATUSES,
    RESUMABLE_STATUSES,
    Run,
    create_run,
    get_run,
    list_runs,
    mark_lost_runs_interrupted,
    set_dataset_hash,
    set_launched,
)
from trainer.control.config import Plan, plan_run, validation_count
from trainer.control.distributed import (
    LAUNCHER_MODULE,
    RUN_MODULE,
    Launch,
    check_available,
    check_launch,
    launcher_command,
    node_commands,
    read_launch,
    write_launch,
)
from trainer.control.labels import match_answer, spec_labels, task_labels
from trainer.control.process import child_environment
from trainer.control.snapshot import SNAPSHOT_FILES, validation_ids, write_snapshot

JOIN_WAIT_SECONDS = 60.0
"""How long a node other than 0 waits for node 0 to create the run it joins (a scheduler
starts every node at about the same moment)."""


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


def approved_rows(db: sqlite_utils.Database, project: Project) -> tuple[ExampleRows, ExampleRows]:
    """The project's approved train-split and eval-split examples, counted and read from the
    store when asked (a run's snapshot writes a million of them one at a time)."""
    return (
        ExampleRows(db, project.id, "approved", "train"),
        ExampleRows(db, project.id, "approved", "eval"),
    )


def start_run(
    db: sqlite_utils.Database,
    db_path: Path,
    project: Project,
    plan: Plan,
    launch: Launch | None = None,
    *,
    same_data_as: Run | None = None,
) -> Run:
    """Freeze the approved rows into a new run's folder and start its process(es), detached.

    With ``launch`` on several nodes this starts node 0's share; the other nodes join with
    ``join_run`` or run the command ``launch_commands`` gives them. With ``same_data_as``, the
    run trains on that run's snapshot instead (a sweep compares methods on one set of rows).
    """
    launch = launch or Launch()
    check_launch(launch, batch_size=plan.config.batch_size, qlora=plan.config.qlora)
    if launch.node_rank != 0:
        raise InputError("node 0 starts a run; the other nodes join it")
    check_available(launch)
    run = prepare_run(db, project, plan, launch, same_data_as=same_data_as)
    return _launch(db, db_path, run, resume=False)


def join_run(db: sqlite_utils.Database, db_path: Path, project: Project, launch: Launch) -> Run:
    """Start this node's ranks of the multi-node run node 0 started for ``project``."""
    check_available(launch)
    deadline = time.monotonic() + JOIN_WAIT_SECONDS
    while True:
        refresh_runs(db)
        for run in reversed(list_runs(db, project.id)):
            if run.status in ACTIVE_STATUSES and _same_rendezvous(run, launch):
                _start_process(
                    run, launcher_command(launch, db_path=db_path, run_id=run.id, resume=False)
                )
                return run
        if time.monotonic() >= deadline:
            raise InputError(
                f"no run of {project.name} is waiting for node {launch.node_rank}: start node 0"
                " first, on the same tunesmith home (storage every node mounts at one path)"
            )
        time.sleep(1.0)


def launch_commands(
    db: sqlite_utils.Database, project: Project, plan: Plan, db_path: Path, launch: Launch
) -> tuple[Run, list[str]]:
    """Prepare a queued run and return every node's launcher command, without starting any."""
    check_launch(launch, batch_size=plan.config.batch_size, qlora=plan.config.qlora)
    run = prepare_run(db, project, plan, launch)
    return run, node_commands(launch, db_path=db_path, run_id=run.id, resume=False)


def prepare_run(
    db: sqlite_utils.Database,
    project: Project,
    plan: Plan,
    launch: Launch | None = None,
    *,
    same_data_as: Run | None = None,
) -> Run:
    """Create a queued run and freeze the project's approved rows (and launch) into its folder:
    the train rows less the validation rows carved from them, those, and the eval rows; or
    copy run ``same_data_as``'s snapshot."""
    if same_data_as is not None:
        return _prepare_from(db, project, plan, launch, same_data_as)
    train, evaluation = approved_rows(db, project)
    validation = validation_ids(_strata(project, train), validation_count(len(train)))
    ensure_private_dir(home_dir())
    root = ensure_private_dir(runs_dir())
    run = create_run(
        db,
        project.id,
        config=plan.config.to_dict(),
        dataset_hash="",
        dataset_size=len(train) - len(validation),
        runs_root=root,
    )
    assert run.run_dir is not None
    run_dir = ensure_private_dir(Path(run.run_dir))
    snapshot = write_snapshot(run_dir, train, evaluation, validation)
    write_launch(run_dir, launch or Launch())
    set_dataset_hash(db, run.id, snapshot.digest)
    return get_run(db, run.id)


def _prepare_from(
    db: sqlite_utils.Database, project: Project, plan: Plan, launch: Launch | None, source: Run
) -> Run:
    """A queued run of ``project`` whose snapshot is a copy of run ``source``'s."""
    if source.project_id != project.id or source.run_dir is None or not source.dataset_hash:
        raise InputError(f"run {source.id} has no snapshot of {project.name} to train on")
    ensure_private_dir(home_dir())
    run = create_run(
        db,
        project.id,
        config=plan.config.to_dict(),
        dataset_hash=source.dataset_hash,
        dataset_size=source.dataset_size or 0,
        runs_root=ensure_private_dir(runs_dir()),
    )
    assert run.run_dir is not None
    run_dir = ensure_private_dir(Path(run.run_dir))
    for name in SNAPSHOT_FILES:
        kept = Path(source.run_dir) / name
        if kept.is_file():
            # Written like a fresh snapshot: private, and whole or not at all.
            with kept.open(encoding="utf-8") as rows, atomic_text_file(run_dir / name) as copy:
                shutil.copyfileobj(rows, copy)
    write_launch(run_dir, launch or Launch())
    return get_run(db, run.id)


def _strata(project: Project, train: ExampleRows) -> Iterator[tuple[int, str]]:
    """Each approved train row's id and stratum for the validation split: its label in a
    label task (so every label is checked on), the same for all in any other task."""
    labels = task_labels(spec_labels(project.task_spec), (row.response for row in train))
    if not labels:
        for example_id in example_ids(train.db, project.id, status="approved", split="train"):
            yield example_id, ""
        return
    for row in train:
        yield row.id, match_answer(labels, row.response) or ""


def resume_run(db: sqlite_utils.Database, db_path: Path, run_id: int) -> Run:
    """Start a stopped, interrupted or failed run again from its last complete checkpoint."""
    run, run_dir = _resumable(db, run_id)
    launch = read_launch(run_dir)
    if launch.nodes > 1:
        raise InputError(
            f"run {run_id} trains on {launch.nodes} nodes; print the command each node runs:"
            f" tunesmith train --resume {run_id} --print-launch"
        )
    check_available(launch)
    return _launch(db, db_path, run, resume=True)


def resume_commands(db: sqlite_utils.Database, db_path: Path, run_id: int) -> list[str]:
    """Every node's launcher command that resumes run ``run_id``, without starting any."""
    _, run_dir = _resumable(db, run_id)
    return node_commands(read_launch(run_dir), db_path=db_path, run_id=run_id, resume=True)


def _resumable(db: sqlite_utils.Database, run_id: int) -> tuple[Run, Path]:
    """Run ``run_id``, seen afresh, and its folder; InputError unless it is stopped,
    interrupted or failed."""
    refresh_runs(db)
    run = get_run(db, run_id)
    if run.status not in RESUMABLE_STATUSES:
        raise InputError(
            f"run {run_id} is {run.status}; only stopped, interrupted or failed runs resume"
        )
    # A run that got as far as stopping or failing has a folder.
    assert run.run_dir is not None
    return run, Path(run.run_dir)


def stop_run(db: sqlite_utils.Database, run_id: int) -> Run:
    """Ask a run to stop: it finishes its step, saves a checkpoint and ends ``stopped``; a
    completed run still evaluating itself ends the evaluation and stays ``completed``.

    The signal goes to the run's process group: one training process, or torchrun's launcher,
    which passes it on to every rank (each has a session of its own).
    """
    refresh_runs(db)
    run = get_run(db, run_id)
    evaluating = bool(evaluating_runs([run], {run.id: latest_evaluation(db, run.id)}))
    if (run.status not in ("queued", "running") and not evaluating) or run.pid is None:
        raise InputError(f"run {run_id} is {run.status}, not running")
    try:
        os.killpg(run.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        # Not a group leader: a rank started by hand under plain torchrun records its own pid.
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
    return state != "Z" and (not command or _is_run_command(command))


def evaluating_runs(
    runs: Iterable[Run], evaluations: Mapping[int, object | None]
) -> frozenset[int]:
    """The completed runs of ``evaluations`` with none stored yet whose process still runs:
    a run is completed once its adapter is saved, and its process then evaluates it."""
    return frozenset(
        run.id
        for run in runs
        if run.status == "completed"
        and run.id in evaluations
        and evaluations[run.id] is None
        and run.pid is not None
        and is_run_process_alive(run.pid)
    )


def _is_run_command(command: bytes) -> bool:
    """Whether a ``/proc`` command line runs a training run: its module, or torchrun's launcher
    of it (the pid a run under torchrun records)."""
    arguments = command.split(b"\0")
    return any(module.encode() in arguments for module in (RUN_MODULE, LAUNCHER_MODULE))


def _same_rendezvous(run: Run, launch: Launch) -> bool:
    """Whether ``run`` was started for the nodes, processes and strategy of ``launch``."""
    if run.run_dir is None:
        return False
    started = read_launch(Path(run.run_dir))
    return started.nodes > 1 and started == replace(launch, node_rank=0)


def _launch(db: sqlite_utils.Database, db_path: Path, run: Run, *, resume: bool) -> Run:
    assert run.run_dir is not None
    command = launcher_command(
        read_launch(Path(run.run_dir)), db_path=db_path, run_id=run.id, resume=resume
    )
    process = _start_process(run, command)
    set_launched(db, run.id, pid=process.pid)
    return get_run(db, run.id)


def _start_process(run: Run, command: list[str]) -> subprocess.Popen[bytes]:
    """Start ``command`` detached from this terminal, its output appended to the run's log."""
    assert run.run_dir is not None and run.log_path is not None
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
            env=child_environment(),
        )
    finally:
        os.close(log_fd)
    return process
