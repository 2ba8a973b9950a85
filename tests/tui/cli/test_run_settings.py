"""Run settings typed on the command line and in the new-run form follow one set of bounds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from store.database import open_database
from store.runs import RunMetric
from tests.repo import REPO
from tests.tui.pilot import VALIDATED_OUTCOME, demo_project, finished_run
from trainer.control.config import default_budget, parse_duration, plan_run, setting_rule
from tui.cli.main import cli
from tui.cli.runs import _metric_line
from tui.dialogs.new_run import FIELDS, parse_value

DEMO = REPO / "examples" / "support_emails.jsonl"


def _train(db_path: Path, *flags: str) -> str:
    result = CliRunner().invoke(cli, ["--db", str(db_path), "train", "support", *flags])
    assert result.exit_code == 2, result.output
    return result.stderr


@pytest.mark.parametrize(
    ("key", "flag", "typed"),
    [
        ("epochs", "--epochs", "1001"),
        ("epochs", "--epochs", "0"),
        ("learning_rate", "--learning-rate", "3"),
        ("batch_size", "--batch-size", "5000"),
        ("lora_rank", "--lora-rank", "2048"),
        ("max_steps", "--max-steps", "0"),
    ],
)
def test_the_cli_and_the_form_refuse_a_value_with_the_same_reason(
    tmp_path: Path, key: str, flag: str, typed: str
) -> None:
    db_path = tmp_path / "t.db"
    open_database(db_path)
    field = next(field for field in FIELDS if field.key == key)
    with pytest.raises(ValueError) as refused:
        parse_value(field, typed)
    reason = str(refused.value)
    assert reason == setting_rule(key)
    assert f"use {reason}" in " ".join(_train(db_path, flag, typed).split())


def test_plan_run_refuses_an_out_of_bound_override_with_the_rule() -> None:
    with pytest.raises(ValueError, match="epochs: use a whole number from 1 to 1000"):
        plan_run(60, 20, {"epochs": 1001})
    assert plan_run(60, 20, {"epochs": 1000}).config.epochs == 1000


def test_train_help_shows_each_setting_with_its_bounds() -> None:
    result = CliRunner().invoke(cli, ["train", "--help"])
    text = " ".join(result.stdout.split())
    assert "Passes over the training rows (a whole number from 1 to 1000)." in text
    assert "(a number between 0 and 1)" in text


@pytest.mark.parametrize(("validated", "eta"), [(False, "ETA 1h15m"), (True, "ETA ≤1h15m")])
def test_followed_runs_show_durations_as_the_app_does(
    tmp_path: Path, validated: bool, eta: str
) -> None:
    db_path = tmp_path / "t.db"
    # A run that validates itself reaches its last step only if every check improves.
    run = finished_run(db_path, demo_project(db_path), validated=validated)
    metric = RunMetric(
        run_id=1,
        step=3,
        epoch=None,
        loss=None,
        eval_loss=None,
        learning_rate=None,
        grad_norm=None,
        tokens=None,
        tokens_per_second=None,
        eta_seconds=4500.0,
        recorded_at="",
    )
    assert _metric_line(metric, run) == f"step 3/6  {eta}"


def test_a_budget_reads_as_a_person_writes_it_and_bad_ones_say_how() -> None:
    assert parse_duration("90s") == 90 and parse_duration("10m") == 600
    assert parse_duration("1h30m") == 5400 and parse_duration("600") == 600
    for bad in ("", "soon", "10 minutes", "0m"):
        with pytest.raises(ValueError, match=re.escape("e.g. 90s, 10m or 1h30m")):
            parse_duration(bad)


def test_the_default_budget_is_twice_the_fixed_plan_and_at_least_ten_minutes() -> None:
    assert default_budget(seconds_per_step=2.0, fixed_steps=24) == 600
    assert default_budget(seconds_per_step=10.0, fixed_steps=60) == 1200


def test_train_refuses_an_unreadable_budget_naming_the_flag(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    open_database(db_path)
    refused = " ".join(_train(db_path, "--budget", "soon").split())
    assert "--budget" in refused and "'soon' is not a duration; use e.g. 90s" in refused


def test_runs_show_lists_each_check_and_the_one_kept(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    run = finished_run(db_path, demo_project(db_path), validated=True)
    result = CliRunner().invoke(cli, ["--db", str(db_path), "runs", "show", str(run.id)])
    assert result.exit_code == 0, result.output
    assert "  checks (validation):\n" in result.output
    assert "step      3  exact match 0.75, eval loss 0.8333  <- kept\n" in result.output
    assert "step      6  exact match 0.75, eval loss 0.4167\n" in result.output
    assert f"  outcome: {VALIDATED_OUTCOME}\n" in result.output
