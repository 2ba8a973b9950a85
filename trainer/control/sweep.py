"""Adaptation methods side by side on one task: what each run cost and how well it did.

``tunesmith sweep`` trains one run per method on the same snapshot and prints ``table_lines``
and ``verdict_lines``; the Train area shows the same for a project's completed runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlite_utils

from store.evals import latest_evaluation
from store.runs import Run, list_runs, metrics
from trainer.control.config import METHODS, format_seconds, stored_method
from trainer.control.eval_report import NO_VALUE, primary_metric
from trainer.control.scoring import METRIC_LABELS


@dataclass(frozen=True)
class MethodResult:
    """One completed run as the methods table shows it; None where a figure is unknown."""

    run_id: int
    method: str
    trainable_parameters: int | None
    adapter_bytes: int | None
    train_seconds: float | None
    tokens_per_second: float | None
    peak_memory: int | None
    metric: str | None
    """The evaluation's primary metric (``exact_match``, ``json_equal``); None unevaluated."""
    score: float | None
    interval: tuple[float, float] | None
    """The 95% bootstrap interval of the tuned score."""
    drift: float | None


def parse_methods(text: str) -> list[str]:
    """The methods of ``--methods lora,ia3,prompt-tuning``, in order; ValueError naming the
    first unknown one, or a method given twice."""
    methods = [part.strip() for part in text.split(",") if part.strip()]
    if not methods:
        raise ValueError(f"name at least one method of {', '.join(METHODS)}")
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"{method!r} is not a method; use {', '.join(METHODS)}")
    if len(set(methods)) != len(methods):
        raise ValueError("each method once")
    return methods


def method_result(db: sqlite_utils.Database, run: Run) -> MethodResult:
    """What run ``run`` cost and scored, from its row, progress rows, files and evaluation."""
    rates = [
        metric.tokens_per_second
        for _, metric in metrics(db, run.id)
        if metric.tokens_per_second is not None
    ]
    evaluation = latest_evaluation(db, run.id)
    metric = score = interval = drift = None
    if evaluation is not None:
        metric = primary_metric(evaluation)
        score = evaluation.tuned.get(metric)
        interval = evaluation.intervals.get("tuned", {}).get(metric)
        drift = evaluation.forgetting.drift if evaluation.forgetting is not None else None
    return MethodResult(
        run_id=run.id,
        method=stored_method(run.config),
        trainable_parameters=run.trainable_parameters,
        adapter_bytes=_weight_bytes(Path(run.adapter_path)) if run.adapter_path else None,
        train_seconds=_seconds_between(run.started_at, run.finished_at),
        # The median step: a check's pause does not drag it down.
        tokens_per_second=statistics.median(rates) if rates else None,
        peak_memory=run.peak_memory,
        metric=metric,
        score=score,
        interval=interval,
        drift=drift,
    )


def project_results(db: sqlite_utils.Database, project_id: int) -> list[MethodResult]:
    """Every completed run of the project, oldest first."""
    return [
        method_result(db, run) for run in list_runs(db, project_id) if run.status == "completed"
    ]


def _weight_bytes(folder: Path) -> int | None:
    """Bytes of the weight files in an adapter (or full model) folder; None when it is gone."""
    if not folder.is_dir():
        return None
    return sum(path.stat().st_size for path in folder.glob("*.safetensors"))


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def best(results: Sequence[MethodResult]) -> MethodResult | None:
    """The result with the highest score; on a tie the fewest trainable parameters, then the
    quickest. None when no run was evaluated."""
    scored = [result for result in results if result.score is not None]
    if not scored:
        return None
    return min(
        scored,
        key=lambda r: (
            -(r.score or 0.0),
            r.trainable_parameters or 0,
            r.train_seconds or 0.0,
        ),
    )


TABLE_HEADINGS = (
    "run",
    "method",
    "trainable",
    "size",
    "time",
    "tok/s",
    "peak mem",
    "score [95%]",
    "drift",
)
"""The methods table's columns, as every place shows them."""


def table_cells(result: MethodResult) -> tuple[str, ...]:
    """One result's cells, in ``TABLE_HEADINGS`` order."""
    if result.score is None:
        scored = NO_VALUE
    elif result.interval is None:
        scored = f"{result.score:.0%}"
    else:
        low, high = result.interval
        scored = f"{result.score:.0%} [{low:.0%}, {high:.0%}]"
    return (
        str(result.run_id),
        result.method,
        _count(result.trainable_parameters),
        _bytes(result.adapter_bytes),
        format_seconds(result.train_seconds) if result.train_seconds is not None else NO_VALUE,
        f"{result.tokens_per_second:.0f}" if result.tokens_per_second is not None else NO_VALUE,
        _bytes(result.peak_memory),
        scored,
        f"{result.drift:+.2f}" if result.drift is not None else NO_VALUE,
    )


def table_lines(results: Sequence[MethodResult]) -> list[str]:
    """The methods as an aligned text table, heading first (``verdict_lines`` say which won)."""
    rows = [TABLE_HEADINGS, *(table_cells(result) for result in results)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE_HEADINGS))]
    return [
        "  ".join(
            cell.ljust(width) if column < 2 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def verdict_lines(results: Sequence[MethodResult]) -> list[str]:
    """Which method did best and at what cost, and what the columns mean."""
    winner = best(results)
    if winner is None:
        return ["No run was evaluated: add eval rows to compare the methods."]
    assert winner.score is not None and winner.metric is not None
    label = METRIC_LABELS.get(winner.metric, winner.metric)
    lines = [
        f"Best: {winner.method} (run {winner.run_id}), {label} {winner.score:.0%},"
        f" {_count(winner.trainable_parameters)} trainable weights,"
        f" {_bytes(winner.adapter_bytes)} on disk, trained in"
        f" {format_seconds(winner.train_seconds)}."
    ]
    overlapping = [
        result.method
        for result in results
        if result is not winner
        and result.interval is not None
        and winner.interval is not None
        and result.interval[1] >= winner.interval[0]
    ]
    if overlapping:
        lines.append(
            f"Its interval overlaps {', '.join(overlapping)}'s: on these eval rows that lead"
            " may be chance."
        )
    lines.append(
        f"Score: {label} of the tuned model on the eval rows; time: start to saved weights;"
        " peak mem: the GPU's allocations, else the process's resident memory; drift: nats"
        " per token on general prompts."
    )
    return lines


def _count(value: int | None) -> str:
    """``1.2M``, ``98k``, ``512``."""
    if value is None:
        return NO_VALUE
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 1_000:
        return f"{value / 1_000:.0f}k"
    return str(value)


def _bytes(value: int | None) -> str:
    """``2.3 GB``, ``540 MB``, ``88 kB``."""
    if value is None:
        return NO_VALUE
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return (
                f"{value / size:.1f} {unit}" if value < 10 * size else f"{value / size:.0f} {unit}"
            )
    return f"{value} B"
