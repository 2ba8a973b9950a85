"""The stopping rule on scripted series of validation checks: improving, plateaus, noise."""

from __future__ import annotations

import pytest

from trainer.control.stopping import Check, judge, stop_reason, validation_metric


def series(*points: tuple[float | None, float], per_epoch: int = 2) -> list[Check]:
    """Checks twice an epoch, from (score, eval loss) pairs."""
    return [
        Check(step=4 * (i + 1), epoch=(i + 1) / per_epoch, score=score, loss=loss)
        for i, (score, loss) in enumerate(points)
    ]


def test_a_run_still_improving_goes_on_and_its_last_check_is_best() -> None:
    checks = series((0.0, 0.9), (0.25, 0.5), (0.5, 0.3), (0.75, 0.2), (0.88, 0.15))
    verdict = judge(checks, patience=3)
    assert not verdict.stop and verdict.stale == 0
    assert verdict.best is checks[-1]


def test_a_plateau_stops_after_patience_checks_and_keeps_the_peak() -> None:
    checks = series((0.25, 0.5), (0.62, 0.3), (0.5, 0.31), (0.62, 0.305), (0.5, 0.32))
    verdict = judge(checks[:4], patience=3)
    assert not verdict.stop and verdict.stale == 2
    verdict = judge(checks, patience=3)
    assert verdict.stop and verdict.stale == 3
    # The peak score, reached twice: the earlier one has the lower eval loss.
    assert verdict.best is checks[1]
    assert (
        stop_reason(verdict, "json_equal") == "validation JSON equal 0.62, no better for 3 checks"
    )


def test_noise_below_the_best_never_resets_the_count_but_a_new_high_does() -> None:
    checks = series((0.5, 0.4), (0.62, 0.35), (0.55, 0.34), (0.58, 0.34), (0.75, 0.33), (0.7, 0.33))
    verdict = judge(checks, patience=3)
    assert verdict.best is checks[4] and verdict.stale == 1 and not verdict.stop


def test_an_equal_score_with_a_lower_loss_is_kept_and_a_falling_loss_is_still_learning() -> None:
    checks = series((0.5, 0.40), (0.5, 0.30), (0.5, 0.20), (0.5, 0.19), (0.5, 0.185))
    verdict = judge(checks, patience=3)
    # 0.30 and 0.20 fell by a tenth or more (still learning); 0.19 and 0.185 are wiggles,
    # yet the lowest loss is the check kept.
    assert verdict.stale == 2 and not verdict.stop
    assert verdict.best is checks[-1]


def test_a_perfect_score_stops_the_run_however_the_loss_falls() -> None:
    checks = series((0.75, 0.02), (1.0, 0.0065), (1.0, 0.005), (1.0, 0.0029), (1.0, 0.0018))
    verdict = judge(checks, patience=3)
    assert verdict.stop
    assert verdict.best is checks[-1], "among perfect checks, the lowest eval loss"


def test_free_text_is_judged_by_eval_loss_alone() -> None:
    checks = series((None, 1.0), (None, 0.8), (None, 0.79), (None, 0.81), (None, 0.78))
    verdict = judge(checks, patience=3)
    assert verdict.stop and verdict.best is checks[-1]
    assert stop_reason(verdict, "") == "validation eval loss 0.7800, no better for 3 checks"


def test_no_run_stops_before_it_has_seen_its_rows_once() -> None:
    checks = series((0.5, 0.4), (0.5, 0.4), (0.5, 0.4), (0.5, 0.4), per_epoch=8)
    verdict = judge(checks, patience=2)
    assert verdict.stale == 3 and not verdict.stop
    assert judge([*checks, Check(step=64, epoch=1.0, score=0.5, loss=0.4)], patience=2).stop


def test_judging_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no checks"):
        judge([], patience=2)


def test_the_metric_is_the_evaluations_headline_for_the_task() -> None:
    assert validation_metric(['{"a": 1}', "plain"], ()) == "json_equal"
    assert validation_metric(["billing", "bug"], ("billing", "bug")) == "exact_match"
    assert validation_metric(["a long free answer"], ()) is None
