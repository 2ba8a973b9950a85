"""Labellers over the model server: the latest tuned run, else the base model few-shot."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent.spec import TaskSpec, save_spec
from store.database import open_database
from store.examples import add_examples, prompt_response
from store.projects import create_project, get_project
from tests.conftest import TinyRun
from trainer.control.launch import ServerHandle, start_server
from tui.labellers import LABEL_MAX_TOKENS, ServedLabeller, project_labeller

TICKETS = TaskSpec(
    goal="classify tickets",
    output_kind="labels",
    labels=("billing", "bug", "account"),
    system_prompt="Label the ticket.",
)


class _StreamingServer(BaseHTTPRequestHandler):
    """Stands in for the model server: records each request, streams the scripted answer."""

    answer: ClassVar[str] = ""
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        self.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for delta, finish in [({"content": self.answer}, None), ({}, "stop")]:
            chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def stand_in() -> Iterator[ServerHandle]:
    """A handle on the stand-in server (no process: only its URL and key are used)."""
    _StreamingServer.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StreamingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield ServerHandle(url, "key", process=None)  # type: ignore[arg-type]
    server.shutdown()
    server.server_close()


def tickets_db(tmp_path: Path, *, approved: bool = True) -> tuple[Any, Any]:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "tickets")
    save_spec(db, project.id, TICKETS)
    rows = [
        prompt_response(f"Ticket {i} about {label}", label)
        for i, label in enumerate(["billing", "bug", "account"] * 3)
    ]
    add_examples(
        db,
        project.id,
        rows,
        source="typed",
        split_mode="train",
        status="approved" if approved else "pending",
    )
    return db, get_project(db, "tickets")


@pytest.mark.parametrize(("answer", "label"), [("Bug.", "bug"), ("refund", None)])
def test_the_base_model_is_shown_the_approved_examples_and_must_name_a_label(
    tmp_path: Path, stand_in: ServerHandle, answer: str, label: str | None
) -> None:
    db, project = tickets_db(tmp_path)
    _StreamingServer.answer = answer
    labeller = project_labeller(db, project, lambda: stand_in)
    assert isinstance(labeller, ServedLabeller)

    assert labeller("The app crashes on start") == label

    assert labeller.name == "the base model shown 8 approved examples"
    [body] = _StreamingServer.bodies
    assert body["model"] == "base"
    assert (body["temperature"], body["max_tokens"], body["stop"]) == (
        0.0,
        LABEL_MAX_TOKENS,
        ["\n"],
    )
    messages = body["messages"]
    assert messages[0] == {"role": "system", "content": "Label the ticket."}
    # Two shots a label, spread over the labels in turn, then the input.
    assert [m["content"] for m in messages[2:17:2]] == ["billing", "bug", "account"] * 2 + [
        "billing",
        "bug",
    ]
    assert messages[-1] == {"role": "user", "content": "The app crashes on start"}


def test_no_labeller_without_a_run_or_approved_examples(
    tmp_path: Path, stand_in: ServerHandle
) -> None:
    db, project = tickets_db(tmp_path, approved=False)
    assert project_labeller(db, project, lambda: stand_in) is None


def test_the_latest_completed_run_answers_on_the_projects_server(
    completed_tiny_run: TinyRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNESMITH_HOME", str(completed_tiny_run.home))
    db = open_database(completed_tiny_run.db_path)
    project = get_project(db, completed_tiny_run.project)
    with start_server(db_path=completed_tiny_run.db_path, project=project.name) as server:
        labeller = project_labeller(db, project, lambda: server)
        assert labeller is not None
        answers = [labeller(f"Name colour number {i}.") for i in range(4)]

    assert labeller.model == f"run-{completed_tiny_run.run_id}"
    assert labeller.name == f"run {completed_tiny_run.run_id} (tuned)"
    # The colours task is a label task by its answers: eight colours, each seen twice.
    assert set(labeller.labels) == {
        "red",
        "green",
        "blue",
        "black",
        "white",
        "orange",
        "purple",
        "yellow",
    }
    assert set(answers) <= {*labeller.labels, None}
