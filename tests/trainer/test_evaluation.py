"""``tunesmith eval``: the stored result of a run, a fresh one on demand, one-line errors; the
three systems, their intervals, per-label results and drift; few-shot prompts that fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from transformers import AutoTokenizer

from agent.models import AGENT_BASE_URL_ENV, AGENT_MODEL_ENV
from store.database import open_database
from store.errors import TunesmithError
from store.evals import evaluation_items, latest_evaluation, list_evaluations, save_evaluation
from store.paths import ensure_private_dir
from store.projects import create_project, get_project
from store.runs import Run, create_run, finish_run, get_run, mark_started
from tests.conftest import TinyRun
from tests.openai_stand_in import stand_in_endpoint
from tests.tui.pilot import copy_database
from trainer.control.few_shot import Shot, choose_shots, shot_count
from trainer.control.forgetting import (
    GeneralAnswer,
    drift_verdict,
    general_prompts,
    write_general_answers,
)
from trainer.control.scoring import METRICS, mean_scores
from trainer.control.snapshot import EVAL_FILE
from trainer.eval_generation import chat_token_ids
from trainer.evaluation import few_shot_conversation, fitted_shots
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
    assert list(printed) == [
        "run",
        "n",
        "base",
        "tuned",
        "few_shot",
        "intervals",
        "mcnemar",
        "labels",
        "forgetting",
        "judge",
    ]
    assert printed["run"] == completed_tiny_run.run_id
    assert printed["n"] == 4
    assert printed["few_shot"]["k"] == stored.shots == 16
    for side in ("base", "tuned", "few_shot"):
        assert [m for m in printed[side] if m != "k"] == list(METRICS)
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
    assert lines[1].split() == ["metric", "base", "few-shot", "tuned", "tuned-base", "tuned-few"]
    assert lines[2].startswith("exact match") and lines[2].endswith("]")
    assert any(line.startswith("Few-shot: the base model shown ") for line in lines)
    assert any(line.startswith("Forgetting: drift ") for line in lines)
    # The colours are a few repeated words: a label task, with its per-label table.
    assert any(
        line.split()[:5] == ["label", "precision", "recall", "F1", "support"] for line in lines
    )
    assert not any("JSON" in line for line in lines), "JSON metrics are not shown when unused"
    assert "[1] Name colour number 16." in lines
    assert "    reference  red" in lines
    assert any(line.startswith("    few-shot   ") for line in lines)
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


def test_a_base_that_answers_nothing_leaves_drift_unmeasured_not_the_evaluation(
    completed_tiny_run: TinyRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A base with random weights can answer every general prompt with nothing at all.
    monkeypatch.setenv("TUNESMITH_HOME", str(tmp_path / "home"))
    db_path = copy_database(completed_tiny_run.db_path, tmp_path / "t.db")
    base_model = get_project(open_database(db_path), "colours").base_model
    prompts = general_prompts()
    silent = [GeneralAnswer(prompt.prompt, "", finished=False) for prompt in prompts]
    write_general_answers(base_model, prompts, silent)
    result = invoke(db_path, "eval", "colours", "--again", "--json")
    assert result.exit_code == 0, result.output
    assert "Forgetting not measured: no answer tokens to score" in result.stderr
    printed = json.loads(result.stdout)
    assert printed["forgetting"] is None and printed["n"] == 4
    stored = latest_evaluation(open_database(completed_tiny_run.db_path), completed_tiny_run.run_id)
    assert stored is not None and printed["tuned"] == stored.tuned


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
    # A result with base and tuned alone prints the newer keys empty.
    assert json.loads(result.stdout) == {
        "run": fake.id,
        "n": 0,
        "base": dict.fromkeys(METRICS),
        "tuned": dict.fromkeys(METRICS),
        "few_shot": None,
        "intervals": {},
        "mcnemar": {},
        "forgetting": None,
        "judge": None,
    }
    assert checks == [4242, 4242, 4242]


def test_every_evaluation_stores_three_systems_intervals_labels_and_drift(
    completed_tiny_run: TinyRun,
) -> None:
    db = open_database(completed_tiny_run.db_path)
    evaluation = latest_evaluation(db, completed_tiny_run.run_id)
    assert evaluation is not None and evaluation.few_shot is not None
    # Eight colours twice each: a label task, two shots a label, all fit the tiny context.
    assert evaluation.shots == 16
    items = evaluation_items(db, evaluation.id)
    assert all(item.few_shot_output is not None and item.few_shot_scores for item in items)
    assert set(evaluation.intervals) == {
        "base",
        "few_shot",
        "tuned",
        "tuned_minus_base",
        "tuned_minus_few_shot",
    }
    low, high = evaluation.intervals["tuned_minus_base"]["token_f1"]
    assert -1.0 <= low <= high <= 1.0
    assert set(evaluation.mcnemar) == {"tuned_vs_base", "tuned_vs_few_shot"}
    test = evaluation.mcnemar["tuned_vs_base"]["exact_match"]
    assert 0.0 <= test.p_value <= 1.0 and test.tuned_only + test.other_only <= 4
    labels = evaluation.labels
    assert labels is not None
    assert labels.labels[:4] == ("red", "green", "blue", "black")
    for system in ("base", "few_shot", "tuned"):
        matrix = labels.confusion[system]
        # Rows: the truths; columns: the labels and "other"; one row each of the 4 eval rows.
        assert len(matrix) == 8 and all(len(row) == 9 for row in matrix)
        assert sum(map(sum, matrix)) == 4
    assert set(labels.per_label["red"]) == {"precision", "recall", "f1", "support"}
    assert evaluation.forgetting is not None
    assert evaluation.forgetting.n == len(drift_prompts())
    assert evaluation.forgetting.verdict == drift_verdict(evaluation.forgetting.drift)


def drift_prompts() -> list[str]:
    return [prompt.prompt for prompt in general_prompts() if prompt.use == "drift"]


def long_shots() -> list[Shot]:
    """Train rows of three labels whose inputs are long enough that not all fit 512 tokens."""
    return [
        Shot(f"Ticket {n}: " + "the printer on floor two jams again " * 8, label)
        for n, label in enumerate(["billing", "bug", "praise"] * 5)
    ]


def test_few_shot_prompts_are_spread_deterministic_and_fit_the_context(
    tiny_model_dir: Path,
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    labels = ("billing", "bug", "praise")
    prompts = [
        [{"role": "system", "content": "Sort the ticket."}, {"role": "user", "content": text}]
        for text in ("Ticket A: refund please.", "Ticket B: " + "it crashes " * 10)
    ]
    shots = fitted_shots(tokenizer, long_shots(), labels, prompts, context=512, room=32)
    assert fitted_shots(tokenizer, long_shots(), labels, prompts, context=512, room=32) == shots
    assert 3 <= len(shots) < shot_count(labels), "some but not all shots fit"
    assert [shot.answer for shot in shots[:3]] == list(labels)
    longest = prompts[1]
    fitting = chat_token_ids(tokenizer, few_shot_conversation(shots, longest))
    assert len(fitting) + 32 <= 512
    one_more = choose_shots(long_shots(), labels, len(shots) + 1)
    too_long = chat_token_ids(tokenizer, few_shot_conversation(one_more, longest))
    assert len(too_long) + 32 > 512
    # Without a known context every default shot is shown.
    unbounded = fitted_shots(tokenizer, long_shots(), labels, prompts, context=None, room=32)
    assert len(unbounded) == shot_count(labels)


def test_a_few_shot_conversation_puts_the_shots_after_the_system_prompt() -> None:
    shots = [Shot("q1", "a1")]
    row = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
    ]
    assert [m["content"] for m in few_shot_conversation(shots, row)] == [
        "S",
        "q1",
        "a1",
        "first",
        "reply",
        "second",
    ]
    assert few_shot_conversation(shots, row[1:2]) == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "first"},
    ]


def test_eval_judge_grades_every_answer_and_shows_the_judge(
    completed_tiny_run: TinyRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A copy: the judge's verdicts are stored with the evaluation the session's run shares.
    db_path = copy_database(completed_tiny_run.db_path, tmp_path / "t.db")
    with stand_in_endpoint() as judge:
        judge.answers = [
            '{"grade": 2, "rationale": "wrong colour"}',
            '{"grade": 5, "rationale": "ok"}',
        ]
        monkeypatch.setenv(AGENT_MODEL_ENV, "judge-model")
        monkeypatch.setenv(AGENT_BASE_URL_ENV, judge.base_url)
        result = invoke(db_path, "eval", "colours", "--judge", "--items")
        assert result.exit_code == 0, result.output
        # Four rows, three systems each: one call per answer.
        assert len(judge.requests) == 12
        assert "judged 12/12" in result.stderr
        lines = result.stdout.splitlines()
        judge_row = next(line for line in lines if line.startswith("judge "))
        # Only the first answer (row 1's base) got a 2.
        assert judge_row.split()[1:4] == ["81.2%", "100.0%", "100.0%"]
        assert any(
            line.startswith(f"Judge: judge-model at {judge.base_url} graded 12") for line in lines
        )
        assert "    judge      base 0.25 · few-shot 1.00 · tuned 1.00" in lines
        assert "    why        ok" in lines
        # A label task is not judged unless asked: a plain eval shows the stored verdicts.
        again = invoke(db_path, "eval", "colours", "--json", "--items")
        assert len(judge.requests) == 12
        record = json.loads(again.stdout)
        assert record["judge"]["means"] == {"base": 0.8125, "few_shot": 1.0, "tuned": 1.0}
        assert record["items"][0]["judge"]["tuned"] == {"score": 1.0, "rationale": "ok"}


def test_eval_judge_without_a_judge_model_says_what_to_set(
    completed_tiny_run: TinyRun, tmp_path: Path
) -> None:
    db_path = copy_database(completed_tiny_run.db_path, tmp_path / "t.db")
    result = CliRunner().invoke(cli, ["--db", str(db_path), "eval", "colours", "--judge"])
    assert result.exit_code != 0
    assert (
        f"no model to judge with: the agent's model judges; set {AGENT_MODEL_ENV}" in result.output
    )
