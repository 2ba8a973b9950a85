"""Training runs and their progress rows.

A run process writes only single autocommitted statements here, so the app reading and
writing the same file never waits long or sees "database is locked".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from store.clock import now_iso
from store.database import write_transaction
from store.errors import InputError, NotFoundError
from store.vocabulary import RUN_STATUSES, RunStatus

ACTIVE_STATUSES: tuple[RunStatus, ...] = ("queued", "running")
"""A run in one of these has (or is about to have) a live process."""
RESUMABLE_STATUSES: tuple[RunStatus, ...] = ("stopped", "interrupted", "failed")
"""A run in one of these can go on from its last complete checkpoint."""


@dataclass(frozen=True)
class Run:
    """One training run of a project."""

    id: int
    project_id: int
    status: RunStatus
    config: dict[str, Any]
    dataset_hash: str | None
    dataset_size: int | None
    pid: int | None
    current_step: int
    max_steps: int | None
    checkpoint_step: int | None
    run_dir: str | None
    log_path: str | None
    adapter_path: str | None
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str
    best_step: int | None = None
    """The step whose checkpoint became the adapter, for a run that validated itself."""
    stop_reason: str | None = None
    """Why the run ended where it did: its validation stopped improving, or its budget ran out."""
    trainable_parameters: int | None = None
    """Weights the run trained (adapter weights, or every weight of a full fine-tune)."""
    peak_memory: int | None = None
    """Peak bytes the training took: the GPU's allocations on CUDA, else the process's RSS."""

    @property
    def validates(self) -> bool:
        """Whether the run checks itself on validation rows, and so may stop at any check."""
        return bool(self.config.get("validation_metric"))


@dataclass(frozen=True)
class RunMetric:
    """One logged training step."""

    run_id: int
    step: int
    epoch: float | None
    loss: float | None
    eval_loss: float | None
    learning_rate: float | None
    grad_norm: float | None
    tokens: int | None
    tokens_per_second: float | None
    eta_seconds: float | None
    recorded_at: str
    validation_score: float | None = None
    """The task metric of greedy answers to the validation rows, at a check."""


def create_run(
    db: sqlite_utils.Database,
    project_id: int,
    *,
    config: dict[str, Any],
    dataset_hash: str,
    dataset_size: int,
    runs_root: Path,
) -> Run:
    """Record a new queued run whose folder is ``runs_root/<id>``."""
    timestamp = now_iso()
    with write_transaction(db):
        cursor = db.execute(
            "INSERT INTO runs (project_id, status, config, dataset_hash, dataset_size,"
            " created_at, updated_at) VALUES (?, 'queued', ?, ?, ?, ?, ?)",
            [project_id, json.dumps(config), dataset_hash, dataset_size, timestamp, timestamp],
        )
        run_id = cursor.lastrowid
        assert run_id is not None
        run_dir = runs_root / str(run_id)
        db.execute(
            "UPDATE runs SET run_dir = ?, log_path = ? WHERE id = ?",
            [str(run_dir), str(run_dir / "run.log"), run_id],
        )
    return get_run(db, run_id)


def set_dataset_hash(db: sqlite_utils.Database, run_id: int, digest: str) -> None:
    """Record the hash of the run's frozen data."""
    db.execute("UPDATE runs SET dataset_hash = ? WHERE id = ?", [digest, run_id])


def set_launched(db: sqlite_utils.Database, run_id: int, *, pid: int) -> None:
    """The launcher started the run's process: queue it again under its new pid.

    A resumed run goes on from its checkpoint, so that is its step again: steps the last
    process logged past it are trained anew.
    """
    db.execute(
        # The process may already have marked itself running; never step back from that.
        "UPDATE runs SET status = CASE status WHEN 'running' THEN status ELSE 'queued' END,"
        " current_step = CASE status WHEN 'running' THEN current_step"
        " ELSE COALESCE(checkpoint_step, 0) END,"
        " pid = ?, error = NULL, finished_at = NULL, updated_at = ? WHERE id = ?",
        [pid, now_iso(), run_id],
    )


def get_run(db: sqlite_utils.Database, run_id: int) -> Run:
    """The run with id ``run_id``."""
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise NotFoundError(f"no run with id {run_id}")
    return _run_from_row(rows[0])


def list_runs(db: sqlite_utils.Database, project_id: int) -> list[Run]:
    """The project's runs, oldest first."""
    return [
        _run_from_row(row)
        for row in db.query("SELECT * FROM runs WHERE project_id = ? ORDER BY id", [project_id])
    ]


def latest_completed_run(db: sqlite_utils.Database, project_id: int) -> Run | None:
    """The newest completed run of the project, if any."""
    rows = list(
        db.query(
            "SELECT * FROM runs WHERE project_id = ? AND status = 'completed'"
            " ORDER BY id DESC LIMIT 1",
            [project_id],
        )
    )
    return _run_from_row(rows[0]) if rows else None


def mark_started(db: sqlite_utils.Database, run_id: int, *, pid: int) -> None:
    """The run's process is up: record its pid and make it ``running``."""
    timestamp = now_iso()
    db.execute(
        "UPDATE runs SET status = 'running', pid = ?, error = NULL, finished_at = NULL,"
        " started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ?",
        [pid, timestamp, timestamp, run_id],
    )


def set_max_steps(db: sqlite_utils.Database, run_id: int, max_steps: int) -> None:
    """Record how many optimizer steps the run will take."""
    db.execute(
        "UPDATE runs SET max_steps = ?, updated_at = ? WHERE id = ?", [max_steps, now_iso(), run_id]
    )


def set_config(db: sqlite_utils.Database, run_id: int, config: dict[str, Any]) -> None:
    """Replace the run's recorded configuration (the values actually used)."""
    db.execute(
        "UPDATE runs SET config = ?, updated_at = ? WHERE id = ?",
        [json.dumps(config), now_iso(), run_id],
    )


def record_step(db: sqlite_utils.Database, metric: RunMetric) -> None:
    """Store one progress row and advance the run's current step, in one statement each."""
    db.execute(
        "INSERT INTO run_metrics (run_id, step, epoch, loss, eval_loss, learning_rate,"
        " grad_norm, tokens, tokens_per_second, eta_seconds, recorded_at, validation_score)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            metric.run_id,
            metric.step,
            metric.epoch,
            metric.loss,
            metric.eval_loss,
            metric.learning_rate,
            metric.grad_norm,
            metric.tokens,
            metric.tokens_per_second,
            metric.eta_seconds,
            metric.recorded_at,
            metric.validation_score,
        ],
    )
    db.execute(
        "UPDATE runs SET current_step = MAX(current_step, ?), updated_at = ? WHERE id = ?",
        [metric.step, now_iso(), metric.run_id],
    )


def set_checkpoint(db: sqlite_utils.Database, run_id: int, step: int) -> None:
    """Record the step of the newest complete checkpoint."""
    db.execute(
        "UPDATE runs SET checkpoint_step = ?, current_step = MAX(current_step, ?),"
        " updated_at = ? WHERE id = ?",
        [step, step, now_iso(), run_id],
    )


def set_outcome(
    db: sqlite_utils.Database, run_id: int, *, best_step: int | None, stop_reason: str | None
) -> None:
    """Record which step's checkpoint became the run's adapter, and why it stopped there."""
    db.execute(
        "UPDATE runs SET best_step = ?, stop_reason = ?, updated_at = ? WHERE id = ?",
        [best_step, stop_reason, now_iso(), run_id],
    )


def set_costs(
    db: sqlite_utils.Database,
    run_id: int,
    *,
    trainable_parameters: int | None = None,
    peak_memory: int | None = None,
) -> None:
    """Record what the run costs, each figure as it becomes known (None keeps the stored one)."""
    db.execute(
        "UPDATE runs SET trainable_parameters = COALESCE(?, trainable_parameters),"
        " peak_memory = COALESCE(?, peak_memory), updated_at = ? WHERE id = ?",
        [trainable_parameters, peak_memory, now_iso(), run_id],
    )


def finish_run(
    db: sqlite_utils.Database,
    run_id: int,
    status: RunStatus,
    *,
    error: str | None = None,
    adapter_path: str | None = None,
) -> None:
    """End the run with ``status`` (completed, failed, stopped or interrupted)."""
    if status not in RUN_STATUSES or status in ACTIVE_STATUSES:
        raise InputError(f"status: {status!r} does not end a run")
    timestamp = now_iso()
    db.execute(
        "UPDATE runs SET status = ?, error = ?, adapter_path = COALESCE(?, adapter_path),"
        " finished_at = ?, updated_at = ? WHERE id = ?",
        [status, error, adapter_path, timestamp, timestamp, run_id],
    )


def metrics(
    db: sqlite_utils.Database, run_id: int, *, after_id: int = 0
) -> list[tuple[int, RunMetric]]:
    """The run's progress rows stored after row ``after_id``, each with its row id."""
    return [
        (
            row["id"],
            RunMetric(
                run_id=row["run_id"],
                step=row["step"],
                epoch=row["epoch"],
                loss=row["loss"],
                eval_loss=row["eval_loss"],
                learning_rate=row["learning_rate"],
                grad_norm=row["grad_norm"],
                tokens=row["tokens"],
                tokens_per_second=row["tokens_per_second"],
                eta_seconds=row["eta_seconds"],
                recorded_at=row["recorded_at"],
                validation_score=row["validation_score"],
            ),
        )
        for row in db.query(
            "SELECT * FROM run_metrics WHERE run_id = ? AND id > ? ORDER BY id",
            [run_id, after_id],
        )
    ]


def mark_lost_runs_interrupted(
    db: sqlite_utils.Database, is_alive: Callable[[int], bool]
) -> list[int]:
    """Mark queued or running runs whose process is gone as ``interrupted``; return their ids."""
    lost: list[int] = []
    for row in db.query("SELECT id, pid FROM runs WHERE status IN ('queued', 'running')"):
        if row["pid"] is not None and not is_alive(row["pid"]):
            timestamp = now_iso()
            # Only if still active: the run may have finished between the read and this write.
            cursor = db.execute(
                "UPDATE runs SET status = 'interrupted', error = COALESCE(error,"
                " 'the training process ended without saying why (killed or machine restarted)'),"
                " finished_at = ?, updated_at = ? WHERE id = ? AND status IN ('queued', 'running')",
                [timestamp, timestamp, row["id"]],
            )
            if cursor.rowcount:
                lost.append(row["id"])
    return lost


def _run_from_row(row: dict[str, Any]) -> Run:
    return Run(
        id=row["id"],
        project_id=row["project_id"],
        status=row["status"],
        config=json.loads(row["config"]),
        dataset_hash=row["dataset_hash"],
        dataset_size=row["dataset_size"],
        pid=row["pid"],
        current_step=row["current_step"],
        max_steps=row["max_steps"],
        checkpoint_step=row["checkpoint_step"],
        run_dir=row["run_dir"],
        log_path=row["log_path"],
        adapter_path=row["adapter_path"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        best_step=row["best_step"],
        stop_reason=row["stop_reason"],
        trainable_parameters=row["trainable_parameters"],
        peak_memory=row["peak_memory"],
    )
