"""The loss chart of a run: train loss per logged step, eval loss where it was measured, and
the validation score of each check (on the right axis), with the kept check's step marked."""

from __future__ import annotations

import math
from collections.abc import Sequence

from textual_plotext import PlotextPlot

from store.runs import RunMetric

MAX_POINTS = 300
"""Points drawn per line; a chart is a few dozen cells wide, and plotext slows with thousands."""


def thin(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """At most ``MAX_POINTS`` of ``points``, evenly spaced, the last one always kept."""
    if len(points) <= MAX_POINTS:
        return points
    every = math.ceil(len(points) / MAX_POINTS)
    return [*points[:-1:every], points[-1]]


class LossChart(PlotextPlot):
    """Train and eval loss against the step, drawn with plotext."""

    def show_metrics(
        self, metrics: Sequence[RunMetric], max_steps: int | None = None, kept: int | None = None
    ) -> None:
        """Draw ``metrics`` (all of a run's progress rows so far) on an axis to ``max_steps``,
        with a line at step ``kept`` (the check whose checkpoint became the adapter)."""
        plot = self.plt
        plot.clear_data()
        plot.clear_figure()
        train = thin([(m.step, m.loss) for m in metrics if m.loss is not None])
        evaluation = thin([(m.step, m.eval_loss) for m in metrics if m.eval_loss is not None])
        validation = thin(
            [(m.step, m.validation_score) for m in metrics if m.validation_score is not None]
        )
        plot.xlabel("step")
        last_step = max([1, max_steps or 0, *(m.step for m in metrics)])
        plot.xlim(0, last_step)
        # Whole steps only: plotext would otherwise label fractions of a step.
        every = math.ceil(last_step / 4)
        ticks: list[float] = [*range(0, last_step, every), last_step]
        plot.xticks(ticks, [str(tick) for tick in ticks])
        if not train and not evaluation:
            plot.title("loss: nothing logged yet")
        else:
            plot.title("loss")
        if train:
            plot.plot([s for s, _ in train], [v for _, v in train], label="train", color="blue")
        if evaluation:
            plot.plot(
                [s for s, _ in evaluation],
                [v for _, v in evaluation],
                label="eval",
                color="red",
                marker="dot",
            )
        if validation:
            plot.plot(
                [s for s, _ in validation],
                [v for _, v in validation],
                label="validation",
                color="green",
                marker="dot",
                yside="right",
            )
            # A score's whole range, so 0.9 looks near the top; plotext's stub mistypes yside.
            plot.ylim(0, 1, yside="right")  # type: ignore[arg-type]
        if kept is not None:
            plot.vline(kept, color="green")
        self.refresh()
