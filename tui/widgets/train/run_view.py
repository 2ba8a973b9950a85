"""One run in detail: status, progress bar, loss and speed, loss chart, log tail, results."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import ProgressBar, Static

from store.evals import Evaluation
from store.runs import Run, RunMetric
from tui.run_text import evaluation_lines, stats_line, status_style
from tui.text import plain
from tui.widgets.train.loss_chart import LossChart

if TYPE_CHECKING:
    from textual.app import ComposeResult

LOG_LINES = 4
"""Lines of the run's log shown under the chart."""

CHART_SECONDS = 2.0
"""Least time between two drawings of the chart of a run that is training."""


def next_step_hint(run: Run) -> str:
    """What the person can do with the run now, with the key."""
    if run.status in ("queued", "running"):
        return "s: stop (saves a checkpoint) · runs on if you quit"
    if run.status in ("stopped", "interrupted", "failed"):
        start = f"step {run.checkpoint_step}" if run.checkpoint_step else "the start"
        return f"r: resume from {start} · n: new run"
    return "c: compare with the base model · n: new run"


def show(widget: Widget, shown: bool) -> None:
    """Show or hide ``widget``; setting ``display`` to what it is already still costs a layout."""
    if widget.display != shown:
        widget.display = shown


class RunView(Vertical):
    """The selected run; ``show`` draws it, ``show_message`` replaces it with a line of text."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: dict[str, Text] = {}
        self._chart_run: int | None = None
        self._chart_drawn = 0.0
        self._chart_stale = False

    def compose(self) -> ComposeResult:
        yield Static(id="run-title", markup=False)
        yield ProgressBar(id="run-progress", show_eta=False)
        yield Static(id="run-stats", markup=False)
        yield Static(id="run-outcome", markup=False)
        yield Static(id="run-error", markup=False)
        yield LossChart(id="run-chart")
        yield Static(id="run-log", markup=False)
        yield Static(id="run-results", markup=False)
        yield Static(id="run-hint", markup=False)
        yield Static(id="run-message", markup=False)

    def on_mount(self) -> None:
        self.show_message("")

    def show_message(self, message: str | Text) -> None:
        """Hide the run details and show ``message`` (an empty state or an error)."""
        for child in self.children:
            show(child, child.id == "run-message")
        self._shown.clear()
        self.query_one("#run-message", Static).update(message)

    def show(
        self,
        run: Run,
        metrics: Sequence[RunMetric],
        log_tail: Sequence[str],
        evaluation: Evaluation | None,
        *,
        metrics_changed: bool,
    ) -> None:
        """Draw ``run`` with its progress rows, the end of its log and its evaluation."""
        for child in self.children:
            if child.id in ("run-message", "run-error", "run-log", "run-results", "run-outcome"):
                show(child, False if child.id == "run-message" else child.display)
            else:
                show(child, True)
        colors = self.app.theme_variables
        title = Text.assemble(
            (f"Run {run.id}", "bold"),
            " · ",
            (run.status, status_style(colors, run.status)),
            f" · step {run.current_step}/{run.max_steps or '?'}",
        )
        if run.best_step is not None and run.status == "completed":
            title.append(f" · kept step {run.best_step}")
        elif run.checkpoint_step:
            title.append(f" · checkpoint {run.checkpoint_step}")
        title.append(f" · {run.dataset_size or 0} train rows")
        self._set("#run-title", title)
        bar = self.query_one("#run-progress", ProgressBar)
        # A run that stopped by itself before its ceiling is done: its bar is full.
        done = run.status == "completed" and run.current_step
        bar.update(
            total=(run.current_step if done else run.max_steps) or None, progress=run.current_step
        )
        self._set("#run-stats", Text(stats_line(run, list(metrics))))
        show(self.query_one("#run-outcome"), bool(run.stop_reason))
        self._set(
            "#run-outcome", plain(f"Outcome: {run.stop_reason}" if run.stop_reason else ""), True
        )
        show(self.query_one("#run-error"), bool(run.error) and run.status != "completed")
        self._set("#run-error", plain(f"{run.status}: {run.error}" if run.error else ""), True)
        # Drawing the chart is the costliest part of an update: while a run trains it is
        # redrawn every CHART_SECONDS at most; another run, or the end, is drawn at once.
        now = time.monotonic()
        if metrics_changed or self._chart_stale:
            active = run.status in ("queued", "running")
            if run.id != self._chart_run or not active or now - self._chart_drawn >= CHART_SECONDS:
                self.query_one(LossChart).show_metrics(metrics, run.max_steps, kept=run.best_step)
                self._chart_run, self._chart_drawn, self._chart_stale = run.id, now, False
            else:
                self._chart_stale = True
        # A finished run's log matters less than its chart and results; a failed one's does.
        show(
            self.query_one("#run-log"),
            bool(log_tail) and (run.status != "completed" or evaluation is None),
        )
        self._set("#run-log", Text("\n").join(plain(line, 200) for line in log_tail))
        show(self.query_one("#run-results"), evaluation is not None)
        if evaluation is not None:
            self._set("#run-results", Text("\n").join(evaluation_lines(evaluation)), True)
        self._set("#run-hint", Text(next_step_hint(run)), True)

    def _set(self, selector: str, content: Text, layout: bool = False) -> None:
        """Show ``content`` in a Static unless it shows it already.

        A run's view changes twice a second while it trains; the lines of fixed height skip
        the layout pass, which costs the most when the CPU is busy training.
        """
        if self._shown.get(selector) == content:
            return
        self._shown[selector] = content
        self.query_one(selector, Static).update(content, layout=layout)
