"""How sure an evaluation is: bootstrap intervals, McNemar's exact test, and the headline.

An eval set holds 20 to 40 rows, so "+5 points" means nothing without its uncertainty. The
intervals resample rows with a seeded ``random.Random``, so one evaluation always prints the
same interval; comparing two systems resamples rows jointly (a paired bootstrap), since both
answered the same rows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

RESAMPLES = 2000
"""Bootstrap resamples: enough for a stable 95% percentile interval, fast in pure Python."""

LEVEL = 0.95
"""Coverage of every interval."""


def bootstrap_interval(
    values: Sequence[float],
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> tuple[float, float]:
    """The ``level`` percentile-bootstrap interval of the mean of ``values``."""
    if not values:
        raise ValueError("a bootstrap interval needs at least one value")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, not {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie between 0 and 1, not {level}")
    rng = random.Random(seed)
    count = len(values)
    means = sorted(sum(rng.choices(values, k=count)) / count for _ in range(resamples))
    tail = (1 - level) / 2
    return _percentile(means, tail), _percentile(means, 1 - tail)


def paired_difference_interval(
    a: Sequence[float],
    b: Sequence[float],
    *,
    seed: int = 0,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> tuple[float, float]:
    """The ``level`` interval of ``mean(a) - mean(b)``, where ``a[i]`` and ``b[i]`` score
    the same row and are resampled together."""
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, not {len(a)} and {len(b)}")
    # Resampling rows jointly and taking the difference of means is resampling the per-row
    # differences and taking their mean.
    differences = [left - right for left, right in zip(a, b, strict=True)]
    return bootstrap_interval(differences, seed=seed, resamples=resamples, level=level)


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    # Linear interpolation between the closest ranks (numpy's default method).
    position = fraction * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test of two systems' right/wrong answers on the same rows."""

    b01: int
    """Rows the first system got wrong and the second right."""
    b10: int
    """Rows the first system got right and the second wrong."""
    p_value: float
    """Two-sided exact binomial p-value of the discordant rows; 1.0 when there are none."""


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> McNemar:
    """Whether two systems differ on the rows where exactly one of them is right."""
    if len(a_correct) != len(b_correct):
        raise ValueError(
            f"paired answers need equal lengths, not {len(a_correct)} and {len(b_correct)}"
        )
    b01 = sum(1 for left, right in zip(a_correct, b_correct, strict=True) if right and not left)
    b10 = sum(1 for left, right in zip(a_correct, b_correct, strict=True) if left and not right)
    discordant = b01 + b10
    # Under no difference each discordant row is a fair coin: double the smaller tail.
    tail = Fraction(sum(math.comb(discordant, k) for k in range(min(b01, b10) + 1)))
    p_value = min(Fraction(1), 2 * tail / 2**discordant)
    return McNemar(b01=b01, b10=b10, p_value=float(p_value))


def difference_sentence(
    name_a: str,
    name_b: str,
    metric_label: str,
    diff: float,
    interval: tuple[float, float],
    n: int,
    p_value: float | None = None,
) -> str:
    """The headline of ``a - b`` on a 0..1 metric, in percentage points: who beats whom and
    by how much when the interval excludes 0, else that the set is too small to tell."""
    low, high = interval
    if low > 0:
        sentence = f"{name_a} beats {name_b} by {_points(diff)} {_interval(low, high)}"
    elif high < 0:
        sentence = f"{name_b} beats {name_a} by {_points(-diff)} {_interval(-high, -low)}"
    else:
        rows = "1 row" if n == 1 else f"{n} rows"
        return (
            f"no clear difference between {name_a} and {name_b} on {metric_label}, "
            f"{_interval(low, high)} points over {rows}{_p_text(p_value)}: add eval rows"
        )
    return f"{sentence} on {metric_label}{_p_text(p_value)}"


def _points(share: float) -> str:
    points = round(share * 100)
    if points == 0:
        return "under 1 point"
    return "1 point" if points == 1 else f"{points} points"


def _interval(low: float, high: float) -> str:
    return f"[{round(low * 100)}, {round(high * 100)}]"


def _p_text(p_value: float | None) -> str:
    if p_value is None:
        return ""
    return " (McNemar p < 0.001)" if p_value < 0.001 else f" (McNemar p = {p_value:.2g})"
