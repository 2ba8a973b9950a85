"""How sure a comparison of the evaluated systems is: each system's 95% interval per metric,
tuned's paired lead over base and over few-shot, and McNemar's exact test of each metric that
is right or wrong per row. No torch here: the evaluation computes them, and tests and tools
compute them on stored items alike."""

from __future__ import annotations

from collections.abc import Sequence

from store.evals import Interval, JudgeSummary, JudgeVerdict, PairedTest, Scores
from trainer.control.scoring import METRICS
from trainer.control.statistics import (
    bootstrap_interval,
    mcnemar_exact,
    paired_difference_interval,
)

SYSTEMS = ("base", "few_shot", "tuned")
"""The systems every evaluation compares, in display order."""

SYSTEM_LABELS = {"base": "base", "few_shot": "few-shot", "tuned": "tuned"}
"""How each system is named to people."""

BINARY_METRICS = ("exact_match", "normalized_match", "json_valid", "json_equal")
"""Metrics that are right or wrong per row, so McNemar's test applies."""

INTERVAL_SEED = 0
"""The bootstrap's seed: one evaluation always prints the same intervals."""


def score_intervals(
    per_item: dict[str, list[Scores]], metrics: Sequence[str] = METRICS
) -> dict[str, dict[str, Interval]]:
    """Each system's 95% interval of each of ``metrics``, and of tuned minus each other system
    there is (paired bootstrap over the rows, fixed seed)."""
    intervals: dict[str, dict[str, Interval]] = {}
    for system, scores in per_item.items():
        intervals[system] = {}
        for metric in metrics:
            values = [value for item in scores if (value := item.get(metric)) is not None]
            if values:
                intervals[system][metric] = bootstrap_interval(values, seed=INTERVAL_SEED)
    for other in [system for system in ("base", "few_shot") if system in per_item]:
        differences: dict[str, Interval] = {}
        for metric in metrics:
            tuned, others = _paired(per_item["tuned"], per_item[other], metric)
            if tuned:
                differences[metric] = paired_difference_interval(tuned, others, seed=INTERVAL_SEED)
        intervals[f"tuned_minus_{other}"] = differences
    return intervals


def paired_tests(per_item: dict[str, list[Scores]]) -> dict[str, dict[str, PairedTest]]:
    """McNemar's exact test of tuned against base and against few-shot, per binary metric."""
    tests: dict[str, dict[str, PairedTest]] = {}
    for other in ("base", "few_shot"):
        tests[f"tuned_vs_{other}"] = {}
        for metric in BINARY_METRICS:
            tuned, others = _paired(per_item["tuned"], per_item[other], metric)
            if tuned:
                # Other first: b01 counts the rows tuned alone got right.
                result = mcnemar_exact([v == 1 for v in others], [v == 1 for v in tuned])
                tests[f"tuned_vs_{other}"][metric] = PairedTest(
                    tuned_only=result.b01, other_only=result.b10, p_value=result.p_value
                )
    return tests


def _paired(
    first: list[Scores], second: list[Scores], metric: str
) -> tuple[list[float], list[float]]:
    """The values of ``metric`` on the rows where both systems have one."""
    pairs = [
        (a, b)
        for left, right in zip(first, second, strict=True)
        if (a := left.get(metric)) is not None and (b := right.get(metric)) is not None
    ]
    return [a for a, _ in pairs], [b for _, b in pairs]


def judge_summary(model: str, verdicts: dict[int, dict[str, JudgeVerdict]]) -> JudgeSummary:
    """What a judge's verdicts (by item, then system) come to: each system's mean score over
    its judged answers and the intervals, the differences paired on the rows both have."""
    systems = [s for s in SYSTEMS if any(s in by_system for by_system in verdicts.values())]
    per_item: dict[str, list[Scores]] = {
        system: [
            {"judge": by_system[system].score if system in by_system else None}
            for by_system in verdicts.values()
        ]
        for system in systems
    }
    scored = {
        system: [value for row in rows if (value := row["judge"]) is not None]
        for system, rows in per_item.items()
    }
    intervals = score_intervals(per_item, ("judge",)) if "tuned" in per_item else {}
    return JudgeSummary(
        model=model,
        means={system: sum(values) / len(values) for system, values in scored.items() if values},
        judged={system: len(values) for system, values in scored.items()},
        intervals={
            name: by_metric["judge"]
            for name, by_metric in intervals.items()
            if "judge" in by_metric
        },
    )
