"""``tunesmith ask``, ``compare`` and ``serve`` against a real model server of the tiny run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from store.database import open_database
from store.errors import ModelError
from store.projects import create_project
from store.runs import create_run
from tests.conftest import TinyRun, interrupted_as_from_a_terminal
from tests.repo import REPO
from trainer.control.client import list_models
from tui.cli.main import cli

PROMPT = "Name colour number 3."
TUNESMITH = [sys.executable, "-c", "from tui.cli.main import main; main()"]
"""The ``tunesmith`` command, run from this checkout."""


@pytest.fixture
def tiny_run(completed_tiny_run: TinyRun, monkeypatch: pytest.MonkeyPatch) -> TinyRun:
    """The completed tiny run, with its home in the environment and no API key set."""
    monkeypatch.setenv("TUNESMITH_HOME", str(completed_tiny_run.home))
    monkeypatch.delenv("TUNESMITH_API_KEY", raising=False)
    return completed_tiny_run


def run(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db_path), *args])


def answers_by_label(stdout: str) -> dict[str, str]:
    """The answers of ``compare`` output, keyed by their ``--- label ---`` headers."""
    parts = re.split(r"^--- (.+) ---$", stdout, flags=re.MULTILINE)
    return {label: text.strip() for label, text in zip(parts[1::2], parts[2::2], strict=True)}


def test_compare_labels_base_and_the_latest_run_and_ask_repeats_each(tiny_run: TinyRun) -> None:
    compared = run(tiny_run.db_path, "compare", tiny_run.project, PROMPT, "--max-tokens", "8")
    asked_tuned = run(
        tiny_run.db_path,
        "ask",
        tiny_run.project,
        PROMPT,
        "--run",
        str(tiny_run.run_id),
        "--max-tokens",
        "8",
    )
    asked_base = run(
        tiny_run.db_path, "ask", tiny_run.project, PROMPT, "--base", "--max-tokens", "8"
    )

    assert compared.exit_code == 0, compared.output
    answers = answers_by_label(compared.stdout)
    [base_label, tuned_label] = answers
    assert base_label.startswith("base (")
    assert tuned_label == f"run {tiny_run.run_id}"
    assert answers[base_label] != answers[tuned_label]
    assert asked_tuned.exit_code == 0, asked_tuned.output
    assert f"--- run {tiny_run.run_id} ---" in asked_tuned.stderr
    assert asked_tuned.stdout.strip() == answers[tuned_label]
    assert asked_base.exit_code == 0, asked_base.output
    assert "--- base (" in asked_base.stderr
    assert asked_base.stdout.strip() == answers[base_label]


@pytest.fixture
def two_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    """A database with projects 'first' (one queued run) and 'second'; no model is needed."""
    monkeypatch.delenv("TUNESMITH_API_KEY", raising=False)
    db_path = tmp_path / "tunesmith.db"
    db = open_database(db_path)
    first = create_project(db, "first")
    create_project(db, "second")
    queued = create_run(
        db, first.id, config={}, dataset_hash="0", dataset_size=0, runs_root=tmp_path / "runs"
    )
    return db_path, queued.id


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "second", PROMPT], "project 'second' has no completed run yet; train one"),
        (["compare", "second", PROMPT], "(tunesmith train second)"),
        (["ask", "second", PROMPT, "--run", "{run}"], "run {run} belongs to project 'first'"),
        (["ask", "first", PROMPT, "--run", "{run}"], "run {run} is queued; only a completed"),
        (["compare", "first", PROMPT, "--run", "999"], "no run with id 999"),
        (["ask", "first", PROMPT, "--run", "{run}", "--base"], "--run and --base exclude"),
        (["ask", "third", PROMPT, "--base"], "no project named 'third'"),
        (["serve", "first", "--host", "0.0.0.0"], "--host 0.0.0.0: listening beyond"),
        (["serve", "first", "--run", "{run}"], "run {run} is queued"),
    ],
)
def test_model_commands_refuse_in_one_line(
    two_projects: tuple[Path, int], args: list[str], message: str
) -> None:
    db_path, run_id = two_projects

    result = run(db_path, *(arg.replace("{run}", str(run_id)) for arg in args))

    assert result.exit_code == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ")
    assert message.replace("{run}", str(run_id)) in line


def test_serve_prints_how_to_call_it_and_stops_on_ctrl_c(tiny_run: TinyRun) -> None:
    api_key = "test-key-that-must-not-be-printed"
    process = subprocess.Popen(
        [*TUNESMITH, "--db", str(tiny_run.db_path), "serve", tiny_run.project, "--port", "0"],
        cwd=REPO,
        env={**os.environ, "TUNESMITH_API_KEY": api_key},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interrupted_as_from_a_terminal,
    )
    assert process.stdout is not None
    banner: list[str] = []
    try:
        for line in process.stdout:
            banner.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(banner)
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/v1$", text, flags=re.MULTILINE)
        assert match, text
        base_url = match.group(1)
        tuned = f"run-{tiny_run.run_id}"
        assert f"Models: base, {tuned}\n" in text
        assert f"curl {base_url}/v1/chat/completions" in text
        assert f'"model": "{tuned}"' in text
        assert 'Authorization: Bearer $TUNESMITH_API_KEY"' in text
        assert api_key not in text
        assert list_models(base_url, api_key) == ["base", tuned]
        with pytest.raises(ModelError, match="HTTP 401"):
            list_models(base_url, None)
    finally:
        process.send_signal(signal.SIGINT)
        rest, errors = process.communicate(timeout=60)

    assert process.returncode == 0, errors
    assert rest.strip() == "Stopped."
    assert api_key not in errors
    with pytest.raises(ModelError, match="connection refused"):
        list_models(base_url, api_key)
