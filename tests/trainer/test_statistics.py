"""Bootstrap intervals, McNemar's exact test and the headline, on data whose answers are known."""

from __future__ import annotations

import time

import pytest

from trainer.control.statistics import (
    McNemar,
    bootstrap_interval,
    difference_sentence,
    mcnemar_exact,
    paired_difference_interval,
)

HALF_RIGHT = [1.0, 0.0] * 20
"""40 rows, half of them right."""


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    values = [0.1, 0.9, 0.4, 0.4, 1.0, 0.0, 0.7]
    assert bootstrap_interval(values) == bootstrap_interval(values)
    assert bootstrap_interval(values, seed=7) == bootstrap_interval(values, seed=7)
    assert bootstrap_interval(values, seed=7) != bootstrap_interval(values, seed=8)


def test_bootstrap_interval_contains_the_mean() -> None:
    values = [0.2, 0.9, 0.5, 0.0, 1.0, 0.3, 0.8, 0.6]
    low, high = bootstrap_interval(values)
    assert low < sum(values) / len(values) < high


def test_bootstrap_interval_narrows_with_more_rows() -> None:
    few_low, few_high = bootstrap_interval(HALF_RIGHT[:10])
    many_low, many_high = bootstrap_interval(HALF_RIGHT * 4)
    # The width shrinks as one over the square root of the rows: 16 times the rows, a quarter.
    assert many_high - many_low < (few_high - few_low) / 2


def test_bootstrap_interval_of_a_known_case() -> None:
    # Resampled means of 40 rows half right are Binomial(40, 1/2) / 40, whose 2.5% and 97.5%
    # quantiles are 14/40 and 26/40.
    low, high = bootstrap_interval(HALF_RIGHT)
    assert low == pytest.approx(14 / 40, abs=0.025)
    assert high == pytest.approx(26 / 40, abs=0.025)
    # The mean of 0..39: 19.5 with a standard error of 11.54 / sqrt(40), so about 19.5 ± 3.6.
    low, high = bootstrap_interval([float(value) for value in range(40)])
    assert low == pytest.approx(19.5 - 3.58, abs=0.6)
    assert high == pytest.approx(19.5 + 3.58, abs=0.6)


def test_bootstrap_interval_of_constant_values_is_that_value() -> None:
    assert bootstrap_interval([0.75] * 12) == (0.75, 0.75)
    assert bootstrap_interval([0.3]) == (0.3, 0.3)


def test_a_wider_level_gives_a_wider_interval() -> None:
    narrow_low, narrow_high = bootstrap_interval(HALF_RIGHT, level=0.5)
    wide_low, wide_high = bootstrap_interval(HALF_RIGHT, level=0.99)
    assert wide_low < narrow_low < narrow_high < wide_high


def test_bootstrap_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval([1.0], resamples=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval([1.0], level=1.0)


def test_paired_difference_resamples_rows_together() -> None:
    base = [float(value % 7) / 7 for value in range(40)]
    tuned = [value + 0.1 for value in base]
    # Every row improves by exactly 0.1, so every paired resample does too; resampling the two
    # columns apart would give a wide interval around 0.1 instead.
    low, high = paired_difference_interval(tuned, base)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    assert paired_difference_interval(base, base) == (0.0, 0.0)


def test_paired_difference_interval_on_fixed_rows() -> None:
    tuned = [1.0] * 30 + [0.0] * 10
    few_shot = [0.0] * 20 + [1.0] * 20
    # Per row: 20 rows +1, 10 rows 0, 10 rows -1, a mean of 0.25 and a standard deviation of
    # 0.83, so about 0.25 ± 1.96 * 0.83 / sqrt(40) = 0.25 ± 0.26.
    low, high = paired_difference_interval(tuned, few_shot)
    assert low < 0.25 < high
    assert low == pytest.approx(0.25 - 0.26, abs=0.04)
    assert high == pytest.approx(0.25 + 0.26, abs=0.04)
    assert paired_difference_interval(tuned, few_shot) == (low, high)
    # The other way round is the same interval negated.
    reverse_low, reverse_high = paired_difference_interval(few_shot, tuned)
    assert (reverse_low, reverse_high) == pytest.approx((-high, -low))
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference_interval([1.0], [1.0, 0.0])


def test_two_thousand_resamples_of_forty_rows_are_fast() -> None:
    tuned = [1.0] * 30 + [0.0] * 10
    few_shot = [0.0] * 20 + [1.0] * 20
    start = time.perf_counter()
    paired_difference_interval(tuned, few_shot)
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize(
    ("b01", "b10", "p_value"),
    [
        # 2 * (C(10,0) + C(10,1)) / 2^10 = 2 * 11 / 1024
        (1, 9, 0.021484375),
        (9, 1, 0.021484375),
        # 2 * (1 + 10 + 45) / 1024
        (2, 8, 0.109375),
        # 2 / 2^5
        (0, 5, 0.0625),
        # Balanced tables double past 1: 2 * (1 + 6 + 15 + 20) / 64, capped.
        (3, 3, 1.0),
        (0, 1, 1.0),
        (0, 0, 1.0),
    ],
)
def test_mcnemar_exact_matches_the_binomial(b01: int, b10: int, p_value: float) -> None:
    # Rows where both are right or both wrong do not count, so add some of each.
    a_correct = [False] * b01 + [True] * b10 + [True, True, False]
    b_correct = [True] * b01 + [False] * b10 + [True, True, False]
    assert mcnemar_exact(a_correct, b_correct) == McNemar(b01=b01, b10=b10, p_value=p_value)


def test_mcnemar_exact_on_a_large_table_stays_exact() -> None:
    result = mcnemar_exact([True] * 60, [False] * 60)
    assert result.b10 == 60 and result.p_value == 2 / 2**60
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar_exact([True], [])


def test_sentence_when_the_first_system_wins() -> None:
    sentence = difference_sentence("tuned", "few-shot", "exact match", 0.48, (0.31, 0.64), 40)
    assert sentence == "tuned beats few-shot by 48 points [31, 64] on exact match"


def test_sentence_when_the_second_system_wins() -> None:
    sentence = difference_sentence("tuned", "few-shot", "exact match", -0.48, (-0.64, -0.31), 40)
    assert sentence == "few-shot beats tuned by 48 points [31, 64] on exact match"


def test_sentence_when_the_interval_holds_zero() -> None:
    sentence = difference_sentence("tuned", "base", "token F1", 0.05, (-0.05, 0.2), 12)
    assert sentence == (
        "no clear difference between tuned and base on token F1, "
        "[-5, 20] points over 12 rows: add eval rows"
    )
    # An interval that reaches 0 holds it.
    touching = difference_sentence("tuned", "base", "token F1", 0.05, (0.0, 0.1), 1)
    assert touching.startswith("no clear difference") and "over 1 row:" in touching


def test_sentence_with_a_p_value_and_small_differences() -> None:
    with_p = difference_sentence(
        "tuned", "base", "exact match", 0.22, (0.05, 0.4), 40, p_value=0.021484375
    )
    assert with_p == "tuned beats base by 22 points [5, 40] on exact match (McNemar p = 0.021)"
    tiny_p = difference_sentence("tuned", "base", "exact match", 0.9, (0.8, 1.0), 40, 1e-9)
    assert tiny_p.endswith("(McNemar p < 0.001)")
    unclear = difference_sentence("tuned", "base", "exact match", 0.1, (-0.1, 0.3), 20, 0.4)
    assert unclear.endswith("over 20 rows (McNemar p = 0.4): add eval rows")
    assert "by 1 point [" in difference_sentence("a", "b", "m", 0.01, (0.005, 0.02), 9000)
    assert "by under 1 point" in difference_sentence("a", "b", "m", 0.004, (0.001, 0.008), 9000)
