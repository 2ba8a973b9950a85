"""``tunesmith eval``: the stored result of a run, a fresh one on demand, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from store.database import open_database
from store.errors import TunesmithError
from store.evals import latest_evaluation, list_evaluations, save_evaluation
from store.paths import ensure_private_dir
from store.projects import create_project
from store.runs import Run, create_run, finish_run, get_run, mark_started
from tests.conftest import TinyRun
from trainer.control.scoring import METRICS, mean_scores
from trainer.control.snapshot import EVAL_FILE
from tui.cli import evaluate as cli_eval
from tui.cli.main import cli


def invoke(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db_path), *args], catch_exceptions=False)


def completed_fake_run(db_path: Path, project_name: str, *, eval_rows: int = 0) -> Run:
    """A run marked completed without training, with ``eval_rows`` rows in its snapshot."""
    db = open_database(db_path)
    project = create_project(db, project_name, base_model=str(db_path.parent / "no-model"))
    run = create_run(
        db,
        project.id,
        config={},
        dataset_hash="0" * 64,
        dataset_size=1,
        runs_root=ensure_private_dir(db_path.parent / "runs"),
    )
    assert run.run_dir is not None
    run_dir = ensure_private_dir(Path(run.run_dir))
    row = {
        "id": None,
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ho"}],
    }
    (run_dir / EVAL_FILE).write_text("".join(json.dumps(row) + "\n" for _ in range(eval_rows)))
    finish_run(db, run.id, "completed", adapter_path=str(run_dir / "adapter"))
    return get_run(db, run.id)


def test_eval_json_prints_the_stored_evaluation(
    completed_tiny_run: TinyRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_child_process(module: str, arguments: list[str]) -> None:
        raise AssertionError("a stored evaluation is shown without evaluating again")

    monkeypatch.setattr(cli_eval, "run_trainer_module", no_child_process)
    result = invoke(completed_tiny_run.db_path, "eval", "colours", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    stored = latest_evaluation(open_database(completed_tiny_run.db_path), completed_tiny_run.run_id)
    assert stored is not None
    assert list(printed) == ["run", "n", "base", "tuned"]
    assert printed["run"] == completed_tiny_run.run_id
    assert printed["n"] == 4
    for side in ("base", "tuned"):
        assert list(printed[side]) == list(METRICS)
        assert all(0.0 <= printed[side][m] <= 1.0 for m in ("exact_match", "token_f1"))
        # The colour references are plain words: the JSON metrics do not apply.
        assert printed[side]["json_valid"] is None and printed[side]["json_equal"] is None
    assert printed["base"] == {m: stored.base.get(m) for m in METRICS}
    assert printed["tuned"] == {m: stored.tuned.get(m) for m in METRICS}


def test_eval_table_and_items_are_safe_text(completed_tiny_run: TinyRun) -> None:
    result = invoke(completed_tiny_run.db_path, "eval", "colours", "--items")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Run {completed_tiny_run.run_id} of 'colours': 4 eval rows")
    assert lines[1].split() == ["metric", "base", "tuned", "change"]
    assert lines[2].startswith("exact match") and lines[2].endswith("pts")
    assert not any("JSON" in line for line in lines), "JSON metrics are not shown when unused"
    assert "[1] Name colour number 16." in lines
    assert "    reference  red" in lines
    assert "\x1b" not in result.stdout


def test_eval_again_stores_a_second_evaluation(completed_tiny_run: TinyRun) -> None:
    db = open_database(completed_tiny_run.db_path)
    before = list_evaluations(db, completed_tiny_run.run_id)
    assert before, "the completed run evaluated itself"
    result = invoke(
        completed_tiny_run.db_path,
        "eval",
        "colours",
        "--run",
        str(completed_tiny_run.run_id),
        "--again",
        "--json",
    )
    assert result.exit_code == 0, result.output
    after = list_evaluations(db, completed_tiny_run.run_id)
    assert len(after) == len(before) + 1
    assert json.loads(result.stdout)["n"] == after[-1].n == 4
    # Progress goes to stderr, so --json output stays parseable.
    assert "Evaluated 4/4 rows" in result.stderr
    # Greedy answers from the same weights score the same again.
    assert after[-1].tuned == before[-1].tuned


def test_eval_errors_are_one_line(tmp_path: Path) -> None:
    db_path = tmp_path / "home" / "tunesmith.db"
    invoke(db_path, "project", "new", "empty")
    fake = completed_fake_run(db_path, "other")

    cases = [
        (("eval", "empty"), "project 'empty' has no completed run; train one"),
        (("eval", "empty", "--run", str(fake.id)), f"run {fake.id} belongs to project 'other'"),
        (("eval", "other"), f"run {fake.id} has no eval rows"),
        (("eval", "other", "--run", "99"), "no run with id 99"),
        (("eval", "missing"), "missing"),
    ]
    for args, message in cases:
        result = invoke(db_path, *args)
        assert result.exit_code == 1, args
        assert result.stdout == ""
        assert result.stderr.startswith("Error: ") and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr


def test_a_run_that_is_not_completed_is_not_evaluated(tmp_path: Path) -> None:
    db_path = tmp_path / "home" / "tunesmith.db"
    fake = completed_fake_run(db_path, "p", eval_rows=1)
    finish_run(open_database(db_path), fake.id, "stopped")
    result = invoke(db_path, "eval", "p", "--run", str(fake.id))
    assert result.exit_code == 1
    assert f"run {fake.id} is stopped; only completed runs are evaluated" in result.stderr


def test_a_failing_child_process_is_one_error_line(tmp_path: Path) -> None:
    db_path = tmp_path / "tunesmith.db"
    open_database(db_path)
    arguments = ["--db", str(db_path), "--run-id", "7", "--dir", str(tmp_path / "out")]
    with pytest.raises(TunesmithError, match=r"^no run with id 7$"):
        cli_eval.run_trainer_module("trainer.export", arguments)


def test_eval_waits_for_a_run_still_evaluating_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "home" / "tunesmith.db"
    fake = completed_fake_run(db_path, "p", eval_rows=1)
    db = open_database(db_path)
    mark_started(db, fake.id, pid=4242)
    finish_run(db, fake.id, "completed")
    checks: list[int] = []

    def alive(pid: int) -> bool:
        checks.append(pid)
        if len(checks) < 3:
            return True
        # The run process stores its evaluation and exits.
        save_evaluation(db, fake.id, [], base=mean_scores([]), tuned=mean_scores([]))
        return False

    def no_child_process(module: str, arguments: list[str]) -> None:
        raise AssertionError("the run's own evaluation is awaited, not repeated")

    monkeypatch.setattr(cli_eval, "is_run_process_alive", alive)
    monkeypatch.setattr(cli_eval, "WAIT_POLL_SECONDS", 0.0)
    monkeypatch.setattr(cli_eval, "run_trainer_module", no_child_process)
    result = invoke(db_path, "eval", "p", "--json")
    assert result.exit_code == 0, result.output
    assert "is evaluating itself; waiting" in result.stderr
    assert json.loads(result.stdout) == {
        "run": fake.id,
        "n": 0,
        "base": dict.fromkeys(METRICS),
        "tuned": dict.fromkeys(METRICS),
    }
    assert checks == [4242, 4242, 4242]
