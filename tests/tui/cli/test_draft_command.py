"""`tunesmith draft` as a person runs it: progress lines, Ctrl-C, Ollama's models as teachers,
a small teacher whose drafts a labeller answers, and the embedded model end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.models import OLLAMA_HOST_ENV, ollama_models, ollama_url
from agent.spec import Requirement, TaskSpec, save_spec
from store.database import open_database
from store.examples import Example, add_examples, list_examples, prompt_response
from store.projects import create_project, get_project
from tests.conftest import interrupted_as_from_a_terminal
from tests.openai_stand_in import StandIn, stand_in_endpoint
from tests.repo import REPO
from tui.cli.main import cli

TICKETS = TaskSpec(
    goal="classify customer support tickets",
    input_description="one customer support ticket",
    output_kind="labels",
    labels=("billing", "bug", "account", "shipping"),
    requirements=(Requirement("R1", "angry customers"),),
)
TYPED = REPO / "examples" / "tickets_typed.jsonl"
"""Eight typed tickets, two a label."""


@pytest.fixture
def ollama(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    """A stand-in Ollama server on loopback, named by $OLLAMA_HOST as Ollama's own clients do."""
    with stand_in_endpoint() as fake:
        fake.models = ["llama3.2:latest", "qwen2.5:0.5b"]
        monkeypatch.setenv(OLLAMA_HOST_ENV, fake.host)
        yield fake


def tickets_project(db_path: Path, base_model: str | None = None) -> None:
    db = open_database(db_path)
    project = create_project(db, "tickets", **({"base_model": base_model} if base_model else {}))
    save_spec(db, project.id, TICKETS)
    rows = [json.loads(line) for line in TYPED.read_text(encoding="utf-8").splitlines()]
    typed = [prompt_response(row["prompt"], row["response"]) for row in rows]
    add_examples(db, project.id, typed, source="typed", split_mode="train")


def drafted(db_path: Path) -> list[Example]:
    db = open_database(db_path)
    return [e for e in list_examples(db, get_project(db, "tickets").id) if e.source == "drafted"]


def draft(db_path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db_path), "draft", "tickets", *args])


def json_lines(batch: int, count: int = 10) -> str:
    return "\n".join(
        json.dumps({"input": f"Order {batch}x{i} never arrived at all", "output": "shipping"})
        for i in range(count)
    )


def test_an_ollama_teacher_drafts_whole_examples_with_progress(
    tmp_path: Path, ollama: StandIn
) -> None:
    db_path = tmp_path / "t.db"
    tickets_project(db_path)
    ollama.answers = [json_lines(1, 3)]

    result = draft(db_path, "3", "--teacher", "ollama:llama3.2")

    assert result.exit_code == 0, result.output
    assert "Drafting 3 examples with llama3.2 at http://127.0.0.1:" in result.stderr
    assert "drafted 3/3" in result.stderr.splitlines()
    assert "Ollama has" not in result.stderr
    assert result.stdout.startswith("Drafted 3 of 3 examples")
    assert [request["model"] for request in ollama.requests] == ["llama3.2"]
    assert [(e.response, e.status) for e in drafted(db_path)] == [("shipping", "pending")] * 3


def test_with_no_teacher_draft_offers_the_models_ollama_has(
    tmp_path: Path, ollama: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "t.db"
    # A base model that cannot load ends the command quickly, after the offer.
    tickets_project(db_path, base_model=str(tmp_path / "no-such-model"))

    offered = draft(db_path, "2")
    monkeypatch.setenv(OLLAMA_HOST_ENV, "127.0.0.1:9")
    not_offered = draft(db_path, "2")

    assert "Ollama has llama3.2, qwen2.5:0.5b here: --teacher ollama:llama3.2" in offered.stderr
    assert offered.exit_code == 1
    assert "Ollama has" not in not_offered.stderr
    assert ollama.requests == []


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (None, "http://localhost:11434"),
        ("0.0.0.0", "http://localhost:11434"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://ollama.example:443/", "https://ollama.example:443"),
        ("[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_where_ollama_is(host: str | None, url: str) -> None:
    assert ollama_url({OLLAMA_HOST_ENV: host} if host else {}) == url


def test_the_probe_lists_ollamas_models_and_gives_up_quickly(ollama: StandIn) -> None:
    assert ollama_models(ollama_url()) == ["llama3.2", "qwen2.5:0.5b"]
    began = time.monotonic()
    assert ollama_models("http://127.0.0.1:9") == []
    assert time.monotonic() - began < 2


def test_ctrl_c_cancels_after_the_current_call_and_keeps_the_drafts(
    tmp_path: Path, ollama: StandIn
) -> None:
    db_path = tmp_path / "t.db"
    tickets_project(db_path)
    ollama.answers = [json_lines(batch) for batch in range(1, 4)]
    ollama.delay = 1.0
    command = [sys.executable, "-c", "from tui.cli.main import main; main()"]
    process = subprocess.Popen(
        [*command, "--db", str(db_path), "draft", "tickets", "30", "--teacher", "ollama:llama3.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=interrupted_as_from_a_terminal,
    )
    assert process.stderr is not None
    progress = []
    for line in process.stderr:
        progress.append(line.strip())
        if line.strip() == "drafted 10/30":
            # Ctrl-C while the second call is under way: the stand-in holds it for a second.
            deadline = time.monotonic() + 30
            while len(ollama.requests) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            process.send_signal(signal.SIGINT)
            break
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "Stopping after the current model call" in stderr
    # The call under way when Ctrl-C came is the last one, and its drafts are kept.
    assert len(ollama.requests) == 2
    assert stdout.startswith("Cancelled after 20 of 30 drafts")
    assert len(drafted(db_path)) == 20


def test_a_small_teacher_writes_inputs_and_the_base_model_answers_them(
    tmp_path: Path, ollama: StandIn, tiny_model_dir: Path
) -> None:
    db_path = tmp_path / "t.db"
    tickets_project(db_path, base_model=str(tiny_model_dir))
    ollama.answers = [
        "I was charged for two seats but only use one",
        "ok",
        "The export button does nothing when I click it",
    ]

    result = draft(db_path, "2", "--teacher", "ollama:smollm2:135m")

    assert result.exit_code == 0, result.output
    assert "drafts will be weak: it writes one short input at a time" in result.stderr
    assert "Answers come from the base model shown 8 approved examples." in result.stderr
    assert "Starting the model server for" in result.stderr
    assert [e.prompt for e in drafted(db_path)] == [
        "I was charged for two seats but only use one",
        "The export button does nothing when I click it",
    ]
    # The tiny random model names no label, so each draft waits for the person's answer.
    assert {e.response for e in drafted(db_path)} <= {"", *TICKETS.labels}
    first = ollama.requests[0]
    assert first["model"] == "smollm2:135m"
    assert first["stop"] == ["\n"]
    assert first["max_completion_tokens"] == 60
    assert 0.8 <= first["temperature"] <= 1.0
    assert isinstance(first["seed"], int)
    assert first["messages"][-1]["content"].startswith("Write a new customer support ticket")
    assert "1 of the teacher's answers were not usable" in result.stdout


@pytest.mark.slow
def test_the_embedded_model_drafts_labelled_tickets(embedded_model_home: Path) -> None:
    db_path = embedded_model_home / "drafting.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNESMITH_HOME", str(embedded_model_home))
        tickets_project(db_path)
    command = [sys.executable, "-c", "from tui.cli.main import main; main()"]
    result = subprocess.run(
        [*command, "--db", str(db_path), "draft", "tickets", "3"],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "TUNESMITH_HOME": str(embedded_model_home),
            OLLAMA_HOST_ENV: "127.0.0.1:9",
        },
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Answers come from the base model shown 8 approved examples." in result.stderr
    assert "drafted 3/3" in result.stderr.splitlines()
    rows = drafted(db_path)
    assert len(rows) == 3
    assert len({e.prompt for e in rows}) == 3
    assert {e.status for e in rows} == {"pending"}
    assert {e.response for e in rows} <= {"", *TICKETS.labels}
