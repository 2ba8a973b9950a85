"""Forgetting: the shipped general prompts, the recorded base answers, drift, and replay."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from store.database import open_database
from store.errors import InputError
from store.evals import Forgetting, latest_evaluation
from store.examples import add_examples
from store.projects import create_project
from store.runs import get_run
from tests.conftest import TinyRun, tiny_task_rows, train_to_the_end
from trainer.control.config import check_setting, plan_run, replay_count
from trainer.control.forgetting import (
    KINDS,
    GeneralAnswer,
    answers_path,
    drift_verdict,
    general_prompts,
    parse_general_prompts,
    read_general_answers,
    write_general_answers,
)
from trainer.control.jobs import plan_for_project, prepare_run
from trainer.training.data import replay_rows, to_prompt_completion

HARSH_LEARNING_RATE = 5e-2
"""Fifty times the default: on the tiny model it drifts over 100 times as far in 6 steps."""


def test_the_shipped_prompts_cover_every_kind_in_two_disjoint_parts() -> None:
    prompts = general_prompts()
    drift = [p for p in prompts if p.use == "drift"]
    replay = [p for p in prompts if p.use == "replay"]
    assert len(drift) >= 20 and replay
    assert {p.kind for p in drift} == {p.kind for p in replay} == set(KINDS)
    assert not {p.prompt for p in drift} & {p.prompt for p in replay}
    assert len({p.prompt for p in prompts}) == len(prompts)


def test_a_bad_prompt_line_names_its_file_and_line() -> None:
    good = '{"use": "drift", "kind": "fact", "prompt": "What is 2 plus 2?"}'
    cases = [
        ("not json", "prompts.jsonl:2: not JSON"),
        ('["a"]', "prompts.jsonl:2: expected an object"),
        ('{"use": "drift", "kind": "fact", "prompt": " "}', "prompts.jsonl:2: prompt must be"),
        ('{"use": "drift", "kind": "poem", "prompt": "x"}', "prompts.jsonl:2: kind must be"),
        ('{"use": "train", "kind": "fact", "prompt": "x"}', "prompts.jsonl:2: use must be"),
    ]
    for line, message in cases:
        with pytest.raises(InputError, match=f"^{message}"):
            parse_general_prompts(f"{good}\n{line}\n", "prompts.jsonl")


def test_base_answers_are_recorded_per_base_model_and_prompts(isolated_home: Path) -> None:
    prompts = general_prompts()
    answers = [GeneralAnswer(p.prompt, f"answer {n}", n % 2 == 0) for n, p in enumerate(prompts)]
    assert read_general_answers("org/model", prompts) is None
    path = write_general_answers("org/model", prompts, answers)
    assert path.is_relative_to(isolated_home) and path.stat().st_mode & 0o777 == 0o600
    assert read_general_answers("org/model", prompts) == answers
    # Another model, or other prompts, have answers of their own.
    assert read_general_answers("org/other", prompts) is None
    assert answers_path("org/model", prompts[1:]) != path
    assert read_general_answers("org/model", prompts[1:]) is None
    # A damaged record is made again rather than trusted.
    path.write_text("{")
    assert read_general_answers("org/model", prompts) is None


def test_drift_verdicts() -> None:
    assert drift_verdict(-0.1) == drift_verdict(0.05) == "little drift"
    assert drift_verdict(0.5) == "some drift"
    assert drift_verdict(3.0) == "strong drift"


def test_replayed_rows_come_on_top_so_the_task_keeps_its_epochs() -> None:
    plain = plan_run(30, 19)
    replayed = plan_run(30, 19, {"replay": 0.3})
    assert replayed.config.epochs == plain.config.epochs == 5
    # 30 task rows and 13 replayed ones, 7 a step: 7 steps an epoch where 30 alone took 5.
    assert (plain.config.max_steps, replayed.config.max_steps) == (25, 35)
    assert (
        replayed.reasons["max_steps"] == "35: 5 epochs x 7 steps, 13 of each epoch's rows replayed"
    )


def test_replay_rows_are_the_fraction_asked_of_the_final_rows() -> None:
    answers = [GeneralAnswer(f"p{n}", f"a{n}", True) for n in range(3)]
    for task_rows, fraction in ((60, 0.2), (16, 0.5), (10, 0.9), (7, 0.3)):
        rows = replay_rows(answers, task_rows, fraction)
        assert len(rows) == replay_count(task_rows, fraction)
        assert abs(len(rows) / (task_rows + len(rows)) - fraction) <= 0.5 / (task_rows + 1)
    assert replay_rows(answers, 60, 0.0) == []
    rows = replay_rows(answers, 16, 0.2)
    assert [row["messages"][0]["content"] for row in rows] == ["p0", "p1", "p2", "p0"]
    # Asked as the base model answered: without the project's system prompt.
    (converted,) = to_prompt_completion(rows[:1], "Answer with one colour.")
    assert converted == {
        "prompt": [{"role": "user", "content": "p0"}],
        "completion": [{"role": "assistant", "content": "a0"}],
    }


def test_replay_takes_zero_up_to_nine_tenths() -> None:
    check_setting("replay", 0.0)
    check_setting("replay", 0.9)
    for value in (-0.1, 0.95, 1.0):
        with pytest.raises(ValueError, match=r"between 0 and 0\.9"):
            check_setting("replay", value)


def train_tiny(home: Path, model_dir: Path, name: str, **overrides: float) -> tuple[int, str]:
    """Train and evaluate a 6-step run of the tiny colour task in ``home``: its id and log."""
    db_path = home / "tunesmith.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNESMITH_HOME", str(home))
        db = open_database(db_path)
        project = create_project(db, name, base_model=str(model_dir))
        add_examples(db, project.id, tiny_task_rows(16), source="imported", split_mode="train")
        eval_rows = tiny_task_rows(20)[16:]
        add_examples(db, project.id, eval_rows, source="imported", split_mode="eval")
        plan = plan_for_project(db, project, {"max_steps": 6, "batch_size": 4, **overrides})
        run = prepare_run(db, project, plan)
        finished = train_to_the_end(
            db_path, run.id, env={**os.environ, "TUNESMITH_HOME": str(home)}
        )
    return run.id, finished.stdout


def drift_of(db_path: Path, run_id: int) -> Forgetting:
    evaluation = latest_evaluation(open_database(db_path), run_id)
    assert evaluation is not None and evaluation.forgetting is not None
    return evaluation.forgetting


@dataclass(frozen=True)
class HarshRuns:
    """Two runs at a harsh learning rate in one home, the second replaying half its rows."""

    db_path: Path
    plain: int
    replayed: int
    replayed_log: str


@pytest.fixture(scope="module")
def harsh_runs(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> HarshRuns:
    """The harsh runs, trained once; sharing a home, they record the base answers once."""
    home = tmp_path_factory.mktemp("harsh-home")
    rate = HARSH_LEARNING_RATE
    plain, _ = train_tiny(home, tiny_model_dir, "harsh", learning_rate=rate)
    replayed, log = train_tiny(home, tiny_model_dir, "replayed", learning_rate=rate, replay=0.5)
    return HarshRuns(home / "tunesmith.db", plain, replayed, log)


def test_a_harsh_run_drifts_more_than_a_gentle_one(
    completed_tiny_run: TinyRun, harsh_runs: HarshRuns
) -> None:
    gentle = drift_of(completed_tiny_run.db_path, completed_tiny_run.run_id)
    harsh = drift_of(harsh_runs.db_path, harsh_runs.plain)
    assert gentle.n == harsh.n >= 20
    assert harsh.drift > 10 * max(gentle.drift, 0.01)
    assert (gentle.verdict, harsh.verdict) == (
        drift_verdict(gentle.drift),
        drift_verdict(harsh.drift),
    )
    assert gentle.verdict != harsh.verdict


def test_replay_mixes_in_base_answers_and_drifts_less(harsh_runs: HarshRuns) -> None:
    run = get_run(open_database(harsh_runs.db_path), harsh_runs.replayed)
    assert run.config["replay"] == 0.5
    # 16 task rows and 16 replay rows: half the final rows.
    assert "Replay: 16 rows of the base model's own answers" in harsh_runs.replayed_log
    assert "(16 of 32 rows)" in harsh_runs.replayed_log
    replayed = drift_of(harsh_runs.db_path, run.id)
    assert replayed.drift < drift_of(harsh_runs.db_path, harsh_runs.plain).drift
