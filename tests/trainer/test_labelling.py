"""``tunesmith label``: proposals with a confidence from the model's own token probabilities,
stored one by one, so a cancelled or killed labeller keeps what it made and a rerun goes on."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner, Result

from agent.spec import TaskSpec, save_spec
from store.database import open_database
from store.errors import CancelledError, TunesmithError
from store.examples import (
    Example,
    add_examples,
    prompt_response,
    unlabeled_example,
    unlabeled_examples,
)
from store.imports import read_examples, read_unlabeled
from store.projects import create_project, get_project
from tests.conftest import TINY_MODEL_CONTEXT, TinyRun, interrupted_as_from_a_terminal
from tests.repo import REPO
from trainer.control.few_shot import Shot, few_shot_messages
from trainer.control.labelling import PROGRESS_PREFIX, start_labelling
from trainer.labelling import Labeller
from trainer.models import load_base_model
from trainer.serving.inference import ModelPool
from tui.cli.main import cli

COLOURS = ("red", "green", "blue", "black", "white", "orange", "purple", "yellow")
TICKET_LABELS = ("billing", "bug", "account", "shipping")
TYPED_TICKETS = REPO / "examples" / "tickets_typed.jsonl"
UNLABELED_TICKETS = REPO / "examples" / "tickets_unlabeled.jsonl"
TUNESMITH = [sys.executable, "-c", "from tui.cli.main import main; main()"]
"""The ``tunesmith`` command, run from this checkout."""


def invoke(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db_path), *args], catch_exceptions=False)


def proposed(db_path: Path, project: str) -> list[Example]:
    db = open_database(db_path)
    return [e for e in unlabeled_examples(db, get_project(db, project).id) if e.proposed]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    """The tiny model and its tokenizer, loaded once for the in-process tests."""
    return load_base_model(str(tiny_model_dir), on_status=lambda message: None)


def full_sequence_log_probability(
    model: Any, prompt_ids: list[int], answer_ids: list[int]
) -> float:
    """The summed log-probability of ``answer_ids`` after ``prompt_ids``, read in one pass
    with no cache: what the labeller's cached, batched scoring must equal."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt_ids + answer_ids])).logits[0]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    start = len(prompt_ids) - 1
    return sum(float(log_probs[start + i, token]) for i, token in enumerate(answer_ids))


def test_label_scores_equal_an_uncached_pass_and_calibration_divides_by_the_shots(
    tiny: tuple[Any, Any],
) -> None:
    model, tokenizer = tiny
    labels = ["red", "green", "blue", "re"]
    labeller = Labeller(model, tokenizer, labels, max_new_tokens=8)
    shots = [Shot("Name colour number 1.", "red"), Shot("Name colour number 2.", "green")]
    messages = few_shot_messages(shots, "Name colour number 9.", "Answer with a colour.")

    head_ids, rest_ids = labeller._split(messages)
    scores = torch.tensor(
        [
            full_sequence_log_probability(model, head_ids + rest_ids, labeller._answer_ids(label))
            for label in labels
        ]
    )
    expected = torch.softmax(scores, dim=0)
    probabilities = torch.tensor(labeller.label_probabilities(messages))
    assert torch.allclose(probabilities, expected, atol=1e-5)
    # "re" is scored as a whole answer (end of turn included), not as the start of "red".
    assert labeller._answer_ids("re")[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")

    uncalibrated = labeller.propose(messages)
    assert uncalibrated is not None
    assert uncalibrated.answer == labels[int(expected.argmax())]
    assert uncalibrated.confidence == pytest.approx(float(expected.max()), abs=1e-5)

    reference = [few_shot_messages(shots, shot.input, "Answer with a colour.") for shot in shots]
    prior = torch.tensor([labeller.label_probabilities(m) for m in reference]).mean(dim=0)
    labeller.calibrate(reference)
    calibrated = (expected / prior) / (expected / prior).sum()
    proposal = labeller.propose(messages)
    assert proposal is not None
    assert proposal.answer == labels[int(calibrated.argmax())]
    assert proposal.confidence == pytest.approx(float(calibrated.max()), abs=1e-5)


def test_free_text_proposal_is_the_greedy_answer_with_its_mean_token_probability(
    tiny: tuple[Any, Any],
) -> None:
    model, tokenizer = tiny
    labeller = Labeller(model, tokenizer, [], max_new_tokens=12)
    messages = few_shot_messages(
        [Shot("Say hello.", "Hello there, friend.")], "Say goodbye.", "Be polite."
    )
    proposal = labeller.propose(messages)
    assert proposal is not None
    pool = ModelPool(model, tokenizer, reuse_prefixes=False)
    (greedy,) = pool.generate("base", [messages], max_new_tokens=12)
    assert proposal.answer == greedy
    assert 0.0 < proposal.confidence <= 1.0
    # The random tiny model is unsure of its words: far from certain, far from nothing.
    assert proposal.confidence < 0.9
    assert not math.isnan(proposal.confidence)


@pytest.fixture
def colours_db(completed_tiny_run: TinyRun, tmp_path: Path) -> Path:
    """A copy of the tiny run's database with four unlabeled colour requests, and one too long
    for the tiny model's context."""
    copy = tmp_path / "colours.db"
    with sqlite3.connect(completed_tiny_run.db_path) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    db = open_database(copy)
    project = get_project(db, completed_tiny_run.project)
    rows = [unlabeled_example(f"Name colour number {i}.") for i in range(40, 44)]
    add_examples(db, project.id, rows, source="imported", status="pending")
    too_long = unlabeled_example("Name the colour of this. " * 120)
    add_examples(db, project.id, [too_long], source="imported", status="pending")
    return copy


def test_label_with_the_latest_run_proposes_a_label_per_row(
    colours_db: Path, completed_tiny_run: TinyRun
) -> None:
    result = invoke(colours_db, "label", "colours")
    assert result.exit_code == 0, result.output
    assert f"with run {completed_tiny_run.run_id} (labels: " in result.stderr
    assert "labelled 4/5: example" in result.stderr
    assert f"tokens; the model's context holds {TINY_MODEL_CONTEXT})" in result.stderr
    assert result.stdout.startswith("Done in ")
    assert "4 of 5 unlabeled rows of 'colours' have a proposal" in result.stdout
    rows = proposed(colours_db, "colours")
    assert len(rows) == 4
    for row in rows:
        assert row.proposed in COLOURS
        assert row.confidence is not None and 0.0 < row.confidence <= 1.0
        assert row.proposed_by == f"run-{completed_tiny_run.run_id}"
        # Among eight labels, the chosen one is at least as likely as a uniform pick.
        assert row.confidence >= 1 / len(COLOURS) - 1e-6
    listed = json.loads(invoke(colours_db, "examples", "list", "colours", "--json").stdout)
    shown = {r["id"]: r for r in listed}
    assert all(shown[row.id]["confidence"] == row.confidence for row in rows)


def test_label_with_the_base_model_answers_a_free_text_task(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    db_path = tmp_path / "free.db"
    db = open_database(db_path)
    project = create_project(db, "notes", base_model=str(tiny_model_dir))
    add_examples(
        db,
        project.id,
        [
            prompt_response("Summarise: the meeting moved to Friday.", "Meeting now on Friday."),
            prompt_response("Summarise: lunch is at noon today.", "Lunch at noon."),
        ],
        source="typed",
        split_mode="train",
    )
    inputs = [unlabeled_example(f"Summarise: note number {i}.") for i in range(3)]
    add_examples(db, project.id, inputs, source="imported", status="pending")
    result = invoke(db_path, "label", "notes", "--base", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert "(free-text answers)" in result.stderr
    rows = proposed(db_path, "notes")
    assert len(rows) == 2, "--limit 2 proposes for two rows"
    for row in rows:
        assert row.proposed_by == "base"
        assert row.confidence is not None and 0.0 < row.confidence <= 1.0
    assert "2 of 3 unlabeled rows" in result.stdout


def progress_ids(lines: list[str]) -> list[int]:
    """The example id of each progress line (``labelled 3/40: example 17 -> ...``)."""
    return [
        int(line.split("example ")[1].split(" ")[0])
        for line in lines
        if line.startswith(PROGRESS_PREFIX)
    ]


def test_a_stopped_or_killed_labeller_keeps_its_proposals_and_a_rerun_goes_on(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    db_path = tmp_path / "many.db"
    db = open_database(db_path)
    project = create_project(db, "many", base_model=str(tiny_model_dir))
    save_spec(db, project.id, TaskSpec(output_kind="labels", labels=COLOURS))
    rows = [unlabeled_example(f"Name colour number {i}.") for i in range(300)]
    add_examples(db, project.id, rows, source="imported", status="pending")

    def stored() -> dict[int, tuple[str | None, float | None]]:
        return {
            e.id: (e.proposed, e.confidence)
            for e in unlabeled_examples(db, project.id)
            if e.proposed is not None
        }

    # Ctrl-C: the command asks the labeller to stop, which ends its row and says so.
    command = subprocess.Popen(
        [*TUNESMITH, "--db", str(db_path), "label", "many"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interrupted_as_from_a_terminal,
    )
    assert command.stderr is not None and command.stdout is not None
    seen = []
    for line in command.stderr:
        seen.append(line.rstrip("\n"))
        if line.startswith(PROGRESS_PREFIX):
            command.send_signal(signal.SIGINT)
            break
    seen += command.stderr.read().splitlines()
    summary = command.stdout.read()
    assert command.wait() == 130
    assert any(line.startswith("Stopped after ") for line in seen), seen
    after_stop = stored()
    assert set(progress_ids(seen)) == set(after_stop)
    assert 0 < len(after_stop) < 300
    assert "Go on: tunesmith label many" in summary

    # kill -9: nothing reported as stored is lost.
    reported = []
    with start_labelling(db_path, "many", None, COLOURS) as job:
        for line in job.lines():
            reported.append(line)
            if line.startswith(PROGRESS_PREFIX):
                os.kill(job.pid, signal.SIGKILL)
                break
        with pytest.raises(TunesmithError, match="killed by signal 9"):
            job.wait()
    after_kill = stored()
    assert set(progress_ids(reported)) <= set(after_kill)
    assert len(after_stop) < len(after_kill) < 300
    assert all(after_kill[key] == value for key, value in after_stop.items())

    # A rerun proposes only for the rows still without a proposal.
    rerun = invoke(db_path, "label", "many")
    assert rerun.exit_code == 0, rerun.output
    assert len(progress_ids(rerun.stderr.splitlines())) == 300 - len(after_kill)
    final = stored()
    assert len(final) == 300
    assert all(final[key] == value for key, value in after_kill.items())
    assert all(label in COLOURS and 0 < (score or 0) <= 1 for label, score in final.values())


def test_cancel_stops_the_labeller_after_its_row(tiny_model_dir: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "cancel.db"
    db = open_database(db_path)
    project = create_project(db, "cancel", base_model=str(tiny_model_dir))
    rows = [unlabeled_example(f"Name colour number {i}.") for i in range(300)]
    add_examples(db, project.id, rows, source="imported", status="pending")
    with start_labelling(db_path, "cancel", None, COLOURS) as job:
        lines = []
        for line in job.lines():
            lines.append(line)
            if line.startswith(PROGRESS_PREFIX):
                job.cancel()
        with pytest.raises(CancelledError):
            job.wait()
    assert lines[-1].startswith("Stopped after ")
    assert 0 < len(proposed(db_path, "cancel")) == len(progress_ids(lines)) < 300


@pytest.mark.slow
def test_the_embedded_model_labels_support_messages_few_shot(
    embedded_model_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(embedded_model_home))
    db_path = tmp_path / "tickets.db"
    db = open_database(db_path)
    project = create_project(db, "tickets")
    save_spec(db, project.id, TaskSpec(output_kind="labels", labels=TICKET_LABELS))
    add_examples(db, project.id, read_examples(TYPED_TICKETS).examples, source="typed")
    truth = {
        json.loads(line)["text"]: json.loads(line)["label"]
        for line in UNLABELED_TICKETS.read_text(encoding="utf-8").splitlines()
    }
    inputs = read_unlabeled(UNLABELED_TICKETS).examples[:4]
    add_examples(db, project.id, inputs, source="imported", status="pending")

    result = invoke(db_path, "label", "tickets", "--base")

    assert result.exit_code == 0, result.output
    assert "Calibrating the label probabilities on the 8 examples shown" in result.stderr
    rows = proposed(db_path, "tickets")
    assert len(rows) == 4
    assert all(row.proposed in TICKET_LABELS and row.proposed_by == "base" for row in rows)
    assert all(row.confidence is not None and 0.25 <= row.confidence <= 1 for row in rows)
    right = sum(row.proposed == truth[row.prompt] for row in rows)
    assert right >= 2, [(row.prompt, row.proposed, row.confidence) for row in rows]
