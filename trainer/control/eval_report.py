"""An evaluation as people read it: base, few-shot and tuned side by side, the differences with
their intervals, the headline in words, the per-label and per-field tables, and the drift.

One module for every place that shows an evaluation (``tunesmith eval``, the Train and Compare
areas, an export's model card), so they never disagree. Evaluations stored before the few-shot
system read with its column empty and no intervals. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.evals import Evaluation, Interval
from trainer.control.comparison import SYSTEM_LABELS, SYSTEMS
from trainer.control.scoring import METRIC_LABELS, METRICS
from trainer.control.statistics import difference_sentence

JUDGE_METRIC = "judge"
"""The row of an LLM judge's scores, after the metrics."""

JUDGE_LABEL = "judge"

NO_VALUE = "-"
"""A cell with nothing to show: a system not in the evaluation, or a metric it did not get."""


@dataclass(frozen=True)
class MetricRow:
    """One metric of an evaluation: each system's mean and tuned's lead over the others."""

    metric: str
    label: str
    base: float
    few_shot: float | None
    tuned: float
    over_base: Interval | None
    """The 95% interval of tuned - base; None before intervals were stored."""
    over_few_shot: Interval | None


def primary_metric(evaluation: Evaluation) -> str:
    """The metric an evaluation is summed up by: JSON equality for a JSON task, else exact
    match."""
    if evaluation.tuned.get("json_equal") is not None:
        return "json_equal"
    return "exact_match"


def metric_rows(evaluation: Evaluation) -> list[MetricRow]:
    """Every metric that applies to base and tuned, in display order."""
    rows = []
    over_base = evaluation.intervals.get("tuned_minus_base", {})
    over_few_shot = evaluation.intervals.get("tuned_minus_few_shot", {})
    for metric in METRICS:
        base, tuned = evaluation.base.get(metric), evaluation.tuned.get(metric)
        if base is None or tuned is None:
            continue
        few_shot = evaluation.few_shot.get(metric) if evaluation.few_shot is not None else None
        rows.append(
            MetricRow(
                metric,
                METRIC_LABELS[metric],
                base,
                few_shot,
                tuned,
                over_base.get(metric),
                over_few_shot.get(metric),
            )
        )
    judge = evaluation.judge
    if judge is not None and "base" in judge.means and "tuned" in judge.means:
        rows.append(
            MetricRow(
                JUDGE_METRIC,
                JUDGE_LABEL,
                judge.means["base"],
                judge.means.get("few_shot"),
                judge.means["tuned"],
                judge.intervals.get("tuned_minus_base"),
                judge.intervals.get("tuned_minus_few_shot"),
            )
        )
    return rows


def percent(value: float | None) -> str:
    """``95.0%``, or ``-`` when there is no value."""
    return NO_VALUE if value is None else f"{value:.1%}"


def change_cell(lead: float | None, interval: Interval | None) -> str:
    """A difference in points with its interval: ``+70 [55, 85]``; without an interval (an
    older evaluation) ``+70.0 pts``; ``-`` without a difference."""
    if lead is None:
        return NO_VALUE
    if interval is None:
        return f"{lead * 100:+.1f} pts"
    low, high = interval
    return f"{lead * 100:+.0f} [{low * 100:.0f}, {high * 100:.0f}]"


def headline(evaluation: Evaluation) -> list[str]:
    """The evaluation in words on its primary metric and the judge's score (when judged):
    whether tuned beats base and few-shot, by how much and how sure (or that the set is too
    small to tell); empty for an evaluation stored without intervals."""
    shown = (primary_metric(evaluation), JUDGE_METRIC)
    sentences = []
    for row in metric_rows(evaluation):
        if row.metric not in shown:
            continue
        label = "the judge's score" if row.metric == JUDGE_METRIC else row.label
        for other, name, value, interval in (
            ("base", "base", row.base, row.over_base),
            ("few_shot", "few-shot", row.few_shot, row.over_few_shot),
        ):
            if value is None or interval is None:
                continue
            test = evaluation.mcnemar.get(f"tuned_vs_{other}", {}).get(row.metric)
            sentences.append(
                difference_sentence(
                    "tuned",
                    name,
                    label,
                    row.tuned - value,
                    interval,
                    evaluation.n,
                    test.p_value if test is not None else None,
                )
            )
    return [sentence[0].upper() + sentence[1:] + "." for sentence in sentences]


def summary_lines(evaluation: Evaluation) -> list[str]:
    """The aligned table of every metric (base, few-shot, tuned, tuned's leads with 95%
    intervals), then the headline and the drift: what ``tunesmith eval`` prints."""
    few_shot = "few-shot" if evaluation.few_shot is not None else ""
    lines = [
        f"{'metric':<17}{'base':>7}{few_shot:>10}{'tuned':>8}"
        f"{'tuned-base':>16}{'tuned-few' if few_shot else '':>16}".rstrip()
    ]
    for row in metric_rows(evaluation):
        few = row.few_shot
        cells = f"{row.label:<17}{percent(row.base):>7}"
        cells += f"{percent(few) if few_shot else '':>10}{percent(row.tuned):>8}"
        cells += f"{change_cell(row.tuned - row.base, row.over_base):>16}"
        if few_shot:
            lead = None if few is None else row.tuned - few
            cells += f"{change_cell(lead, row.over_few_shot):>16}"
        lines.append(cells)
    lines += notes(evaluation)
    return lines


def report_lines(evaluation: Evaluation) -> list[str]:
    """The whole evaluation: ``summary_lines``, then a label task's or a JSON task's tables."""
    lines = summary_lines(evaluation)
    for extra in (label_lines(evaluation), field_lines(evaluation)):
        if extra:
            lines += ["", *extra]
    return lines


def notes(evaluation: Evaluation) -> list[str]:
    """What the table's columns mean where it is not obvious, the headline and the drift."""
    lines = []
    if evaluation.shots is not None:
        shown = "1 train example" if evaluation.shots == 1 else f"{evaluation.shots} examples"
        lines.append(f"Few-shot: the base model shown {shown} from the train split.")
    if evaluation.intervals:
        lines.append("Leads in points with 95% intervals (paired bootstrap over the eval rows).")
    judge = evaluation.judge
    if judge is not None:
        answers = sum(judge.judged.values())
        lines.append(
            f"Judge: {judge.model} graded {answers} answers from 1 to 5 against the task's rules"
            " and the reference (shown from 0% for 1 to 100% for 5)."
        )
    lines += headline(evaluation)
    drift = drift_line(evaluation)
    if drift:
        lines.append(drift)
    return lines


def drift_line(evaluation: Evaluation) -> str:
    """``Forgetting: drift +0.07 nats/token on 20 general prompts (little drift)``; empty
    when drift was not measured."""
    forgetting = evaluation.forgetting
    if forgetting is None:
        return ""
    return (
        f"Forgetting: drift {forgetting.drift:+.2f} nats/token on {forgetting.n} general "
        f"prompts ({forgetting.verdict})"
    )


def label_lines(evaluation: Evaluation) -> list[str]:
    """A label task's tuned per-label precision, recall, F1 and support, each system's
    accuracy and macro-F1, and the tuned confusion matrix; empty for other tasks."""
    report = evaluation.labels
    if report is None:
        return []
    width = max(8, *(len(label) for label in report.labels))
    lines = [f"{'label':<{width}} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}"]
    for label in report.labels:
        scores = report.per_label.get(label, {})
        lines.append(
            f"{label:<{width}} {scores.get('precision', 0):>9.2f} {scores.get('recall', 0):>7.2f}"
            f" {scores.get('f1', 0):>6.2f} {int(scores.get('support', 0)):>8}"
        )
    for system in SYSTEMS:
        if system in report.accuracy:
            name = SYSTEM_LABELS[system]
            lines.append(
                f"{name}: accuracy {report.accuracy[system]:.1%}, "
                f"macro-F1 {report.macro_f1.get(system, 0):.2f}"
            )
    matrix = report.confusion.get("tuned")
    if matrix:
        columns = [*report.labels, "other"]
        cell = max(5, *(len(column) for column in columns))
        lines.append("Tuned confusion (rows: truth, columns: answer):")
        lines.append(" " * width + "".join(f" {column[:cell]:>{cell}}" for column in columns))
        for label, counts in zip(report.labels, matrix, strict=False):
            lines.append(f"{label:<{width}}" + "".join(f" {count:>{cell}}" for count in counts))
    return lines


def field_lines(evaluation: Evaluation) -> list[str]:
    """A JSON task's accuracy of each top-level field per system; empty for other tasks."""
    fields = evaluation.json_fields
    tuned = fields.get("tuned", {})
    if not tuned:
        return []
    systems = [system for system in SYSTEMS if system in fields]
    width = max(8, *(len(name) for name in tuned))
    lines = [f"{'field':<{width}}" + "".join(f" {SYSTEM_LABELS[s]:>9}" for s in systems)]
    for name in tuned:
        lines.append(
            f"{name:<{width}}"
            + "".join(f" {percent(fields[system].get(name)):>9}" for system in systems)
        )
    return lines
