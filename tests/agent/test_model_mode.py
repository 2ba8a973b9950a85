"""Model mode with scripted langchain fake chat models, and once for real on our own server."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from pydantic import Field

from agent.interview import Interview
from agent.model_mode import AgentTurn, SpecUpdate, apply_update, structured_call
from agent.models import fixed_source
from agent.spec import TaskSpec, load_spec, save_spec
from store.database import open_database
from store.errors import ModelError
from store.examples import list_examples
from store.messages import list_messages
from store.projects import create_project, get_project
from tui.cli.main import cli

FALLBACK = "Continuing in guided mode."

TURN = {
    "update": {"goal": "classify support tickets", "labels": ["billing", "technical"]},
    "examples": [{"input": "I was charged twice", "output": "billing"}],
    "reply": "What does one ticket look like?",
}


class ScriptedModel(GenericFakeChatModel):
    """Plays scripted answers, counting calls and keeping every request."""

    requests: list[list[BaseMessage]] = Field(default_factory=list)

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.requests.append(messages)
        return super()._generate(messages, *args, **kwargs)


class ToolCallingModel(ScriptedModel):
    """A scripted model that accepts tools, so structured output goes through tool calls."""

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self


def tool_call(args: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": "AgentTurn", "args": args, "id": "call_1"}])


def interview(tmp_path: Path, model: BaseChatModel) -> Interview:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "tickets")
    chat = Interview(db, project, model=fixed_source(model, "scripted"), cwd=tmp_path)
    chat.opening()
    return chat


def test_json_answers_update_the_spec_and_store_examples(tmp_path: Path) -> None:
    model = ScriptedModel(messages=iter([json.dumps(TURN)]))
    chat = interview(tmp_path, model)
    reply = chat.handle(
        "I want to sort tickets into billing or technical. 'I was charged twice' is billing."
    )
    assert chat.mode == "model"
    assert reply.text.startswith("Got it. Goal: classify support tickets; answers: one label")
    assert "Saved example 1: billing" in reply.text
    assert reply.text.endswith("What does one ticket look like?")
    spec = load_spec(get_project(chat.db, "tickets"))
    assert spec.labels == ("billing", "technical")
    stored = list_examples(chat.db, chat.project_id)
    assert [(e.prompt, e.response, e.source) for e in stored] == [
        ("I was charged twice", "billing", "typed")
    ]
    system = model.requests[0][0].content
    assert isinstance(system, str)
    assert "matching this JSON schema" in system
    assert '"goal": null' in system


def test_tool_calls_update_the_spec(tmp_path: Path) -> None:
    model = ToolCallingModel(messages=iter([tool_call(TURN)]))
    chat = interview(tmp_path, model)
    reply = chat.handle("Tickets: billing or technical.")
    assert FALLBACK not in reply.text
    assert chat.spec.goal == "classify support tickets"
    assert chat.spec.labels == ("billing", "technical")


@pytest.mark.parametrize(
    "answer",
    [
        tool_call({"update": {"labels": "billing"}, "reply": "ok"}),
        tool_call({"update": {}}),
        AIMessage("Sure! The labels are billing and technical."),
        AIMessage('{"update": {"target_examples": -5}, "reply": "x"}'),
    ],
    ids=["wrong type", "no reply", "prose instead of a tool call", "out of range"],
)
def test_malformed_structured_output_falls_back_once(tmp_path: Path, answer: AIMessage) -> None:
    model = ToolCallingModel(messages=iter([answer]))
    chat = interview(tmp_path, model)
    first = chat.handle("I need a model that classifies customer support tickets.")
    second = chat.handle("The labels are billing, technical and account.")
    third = chat.handle("Input: my parcel is late Output: shipping")
    assert first.text.startswith("(The model scripted cannot give the structured answers")
    assert first.text.count(FALLBACK) == 1
    assert FALLBACK not in second.text + third.text
    assert len(model.requests) == 1
    assert chat.mode == "guided"
    assert chat.spec.goal == "classify customer support tickets"
    assert chat.spec.labels == ("billing", "technical", "account")
    transcript = "\n".join(m.content for m in list_messages(chat.db, chat.project_id))
    assert transcript.count(FALLBACK) == 1


class UnreachableModel(BaseChatModel):
    """A model whose endpoint refuses connections."""

    @property
    def _llm_type(self) -> str:
        return "unreachable"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise ConnectionError("Connection refused (key sk-secret-123)")


def test_an_unreachable_model_falls_back_without_showing_the_key(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    source = fixed_source(UnreachableModel(), "gpt-x at example.org")
    source.secrets = ("sk-secret-123",)
    chat = Interview(db, create_project(db, "t"), model=source)
    reply = chat.handle("Sort tickets by topic")
    assert "Connection refused (key ***)" in reply.text
    assert "sk-secret" not in reply.text
    assert chat.spec.goal == "Sort tickets by topic"


def test_pasted_examples_skip_the_model(tmp_path: Path) -> None:
    model = ScriptedModel(messages=iter([]))
    chat = interview(tmp_path, model)
    reply = chat.handle("Input: a\nOutput: b")
    assert reply.text.startswith("Saved example 1: b")
    assert model.requests == []


def test_structured_call_reports_why() -> None:
    model = ScriptedModel(messages=iter(['```json\n{"reply": "hi",}\n```', "no json"]))
    assert structured_call(model, [AIMessage("x")], AgentTurn).reply == "hi"
    with pytest.raises(ModelError, match="not the JSON asked for"):
        structured_call(model, [AIMessage("x")], AgentTurn)


def test_apply_update_checks_what_the_model_says() -> None:
    spec, changed = apply_update(
        TaskSpec(goal="old"),
        SpecUpdate(
            labels=["only-one"],
            json_sample='{"name": "x", "email": "y"}',
            requirements=["angry customers", " "],
            target_examples=30,
        ),
    )
    assert spec.labels == ()
    assert spec.json_fields == ("name", "email")
    assert [r.id for r in spec.requirements] == ["R1"]
    assert changed == ["output", "requirements", "target"]
    same, nothing = apply_update(spec, SpecUpdate())
    assert same == spec and nothing == []


def test_model_mode_for_real_on_the_tiny_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    """`tunesmith chat --local` serves the project's base model; the tiny one cannot follow, so
    the interview says so once and goes on guided, to the same spec."""
    db_path = tmp_path / "t.db"
    db = open_database(db_path)
    create_project(db, "tickets", base_model=str(tiny_model_dir))
    script = "\n".join(
        [
            "I need a model that classifies customer support tickets.",
            "The labels are billing, technical, account and shipping.",
            "Input: My card was charged twice. Output: billing",
        ]
    )
    result = CliRunner().invoke(
        cli, ["--db", str(db_path), "chat", "tickets", "--local"], input=script + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "Model mode: " in result.stderr
    assert "Starting the model server" in result.stderr
    assert result.stdout.count(FALLBACK) == 1
    spec = load_spec(get_project(db, "tickets"))
    assert spec.labels == ("billing", "technical", "account", "shipping")
    assert [e.response for e in list_examples(db, get_project(db, "tickets").id)] == ["billing"]


def test_a_teacher_that_fails_while_drafting_does_not_show_its_key(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "t")
    save_spec(
        db,
        project.id,
        TaskSpec(goal="sort tickets", output_kind="labels", labels=("billing", "bug")),
    )
    teacher = fixed_source(UnreachableModel(), "gpt-x at example.org")
    teacher.secrets = ("sk-secret-123",)
    chat = Interview(db, get_project(db, "t"), teacher=teacher)
    reply = chat.handle("/draft 2")
    assert "key ***" in reply.text
    assert "sk-secret" not in reply.text
