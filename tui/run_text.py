"""How runs and their results read in the Train area and in notifications."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text

from store.evals import Evaluation
from store.runs import Run, RunMetric
from trainer.control.config import format_seconds
from trainer.control.eval_report import (
    drift_line,
    headline,
    metric_rows,
    primary_metric,
)
from trainer.control.scoring import METRIC_LABELS
from trainer.control.stopping import Check, check_text
from tui.widgets.theme_colors import theme_color

STATUS_STYLES = {
    "queued": "text-secondary",
    "running": "text-primary",
    "completed": "text-success",
    "failed": "text-error",
    "stopped": "text-warning",
    "interrupted": "text-warning",
}
"""Theme variable that colours each run status (each a plain colour in every theme)."""


def status_style(variables: dict[str, str], status: str) -> str:
    """The Rich style of ``status`` in the app's theme (none where Rich cannot use it)."""
    return theme_color(variables, STATUS_STYLES.get(status, ""))


def stop_asked_text(run: Run) -> str:
    """What asking ``run`` to stop does: a training run saves a checkpoint first; a completed
    one ends the evaluation it is running and keeps its adapter."""
    if run.status == "completed":
        return f"Asked run {run.id} to stop evaluating itself; its adapter is kept."
    return f"Asked run {run.id} to stop; it saves a checkpoint first."


LOG_TAIL_BYTES = 8192
"""How much of the end of a run's log is read for its last lines."""


def result_cell(run: Run, evaluation: Evaluation | None, *, evaluating: bool = False) -> str:
    """The history table's summary of a run: ``0%→95%`` once evaluated, ``evaluating…`` while
    its process evaluates it, else its steps."""
    if evaluation is not None:
        metric = primary_metric(evaluation)
        base, tuned = evaluation.base.get(metric), evaluation.tuned.get(metric)
        if base is not None and tuned is not None:
            return f"{base:.0%}→{tuned:.0%}"
    if run.status == "completed":
        return "evaluating…" if evaluating else "no eval"
    return f"{run.current_step}/{run.max_steps or '?'}"


def evaluation_lines(evaluation: Evaluation) -> list[Text]:
    """The evaluation on its primary metric (``exact match  0% → 25% → 95%``: base, base shown
    k examples, tuned), tuned against few-shot in words (else against base), and the drift.
    Few lines, so the Train area keeps room for the chart at 24 rows; the Compare area shows
    every metric and table (m)."""
    metric = primary_metric(evaluation)
    row = next((row for row in metric_rows(evaluation) if row.metric == metric), None)
    shots = "" if evaluation.few_shot is None else f"{evaluation.shots}-shot → "
    lines = [Text(f"Held-out eval, {evaluation.n} rows (base → {shots}tuned):", style="bold")]
    if row is not None:
        few = "" if evaluation.few_shot is None else f"{_whole_percent(row.few_shot)} → "
        lines.append(
            Text.assemble(
                f"  {row.label}  {_whole_percent(row.base)} → {few}",
                (_whole_percent(row.tuned), "bold"),
            )
        )
    # The last sentence compares with few-shot where there is one: the bar fine-tuning must clear.
    lines += [Text(sentence) for sentence in headline(evaluation)[-1:]]
    drift = drift_line(evaluation)
    if drift:
        lines.append(Text(drift))
    return lines


def _whole_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def eta_text(seconds: float | None, *, at_most: bool) -> str:
    """``ETA 1m05s``, or ``ETA ≤1m05s`` ``at_most``: for a run that validates itself, which goes
    on to its ceiling only while its checks keep improving."""
    bound = "≤" if at_most and seconds is not None else ""
    return f"ETA {bound}{format_seconds(seconds)}"


def stats_line(run: Run, metrics: list[RunMetric]) -> str:
    """The latest loss, eval loss, speed and ETA, e.g. ``loss 1.23 · 950 tok/s · ETA 1m05s``."""
    last_loss = next((m for m in reversed(metrics) if m.loss is not None), None)
    last_eval = next((m for m in reversed(metrics) if m.eval_loss is not None), None)
    parts = []
    if last_loss is not None and last_loss.loss is not None:
        parts.append(f"loss {last_loss.loss:.4f}")
    if last_eval is not None and last_eval.eval_loss is not None:
        parts.append(f"eval loss {last_eval.eval_loss:.4f}")
    if last_eval is not None and last_eval.validation_score is not None:
        parts.append(f"validation {last_eval.validation_score:.2f}")
    if last_loss is not None and last_loss.tokens_per_second is not None:
        parts.append(f"{last_loss.tokens_per_second:,.0f} tok/s")
    if last_loss is not None and last_loss.eta_seconds is not None:
        parts.append(eta_text(last_loss.eta_seconds, at_most=run.validates))
    return " · ".join(parts) if parts else "no step logged yet"


def check_lines(run: Run, metrics: Sequence[RunMetric]) -> list[str]:
    """Each validation check of ``run``, one line each, the kept one marked."""
    metric = str(run.config.get("validation_metric") or "")
    lines = []
    for metric_row in metrics:
        if metric_row.eval_loss is None:
            continue
        check = Check(
            metric_row.step,
            metric_row.epoch or 0.0,
            metric_row.validation_score if metric in METRIC_LABELS else None,
            metric_row.eval_loss,
        )
        kept = "  <- kept" if metric_row.step == run.best_step else ""
        lines.append(f"step {metric_row.step:>6}  {check_text(check, metric)}{kept}")
    return lines


def run_outcome(run: Run, project_name: str) -> tuple[str, str, bool]:
    """(title, line, failed) announcing that ``run`` ended."""
    where = f"Run {run.id} of {project_name}"
    if run.status == "completed":
        return "Training finished", f"{where} completed. Compare it in area 4.", False
    if run.status == "stopped":
        return (
            "Training stopped",
            f"{where} stopped at step {run.current_step}; r in Train resumes it.",
            False,
        )
    reason = f": {run.error}" if run.error else ""
    return f"Training {run.status}", f"{where} {run.status}{reason}", True


def read_log_tail(log_path: str | None, lines: int) -> tuple[str, ...]:
    """The last ``lines`` lines of a run's log (what a carriage return overwrote left out)."""
    if not log_path:
        return ()
    try:
        with Path(log_path).open("rb") as log:
            log.seek(0, 2)
            size = log.tell()
            log.seek(max(0, size - LOG_TAIL_BYTES))
            data = log.read()
    except OSError:
        return ()
    text = data.decode("utf-8", errors="replace")
    kept = [line.rsplit("\r", 1)[-1] for line in text.splitlines() if line.strip()]
    if size > LOG_TAIL_BYTES and kept:
        # The first line read is probably cut in the middle.
        kept = kept[1:]
    return tuple(kept[-lines:])
