"""`tunesmith chat`, `spec` and `draft` as a person (or a script) runs them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage

from agent.models import (
    AGENT_API_KEY_ENV,
    AGENT_BASE_URL_ENV,
    AGENT_MODEL_ENV,
    OPENAI_API_KEY_ENV,
    ChatModelSource,
    Endpoint,
    agent_endpoint,
    fixed_source,
    teacher_endpoint,
)
from agent.spec import load_spec
from store.config import EndpointSettings, Settings
from store.database import open_database
from store.errors import InputError
from store.examples import Example, list_examples
from store.messages import list_messages
from store.projects import get_project
from tui.agent_sources import AGENT_MAX_TOKENS, endpoint_source, teacher_source
from tui.cli import agent as cli_agent
from tui.cli.agent import read_messages
from tui.cli.main import cli

ISSUE_SCRIPT = [
    "I need a model that classifies customer support tickets.",
    "The labels are billing, technical, account and shipping.",
    "Input: My card was charged twice this month.",
    "Output: billing",
    "Input: The app crashes every time I open settings.",
    "Output: technical",
]


@pytest.fixture(autouse=True)
def no_agent_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guided mode unless a test configures a model: no endpoint from the developer's shell."""
    for name in (AGENT_BASE_URL_ENV, AGENT_API_KEY_ENV, AGENT_MODEL_ENV, OPENAI_API_KEY_ENV):
        monkeypatch.delenv(name, raising=False)


def run(db_path: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db_path), *args], input=input)


def examples_of(db_path: Path, name: str) -> list[Example]:
    db = open_database(db_path)
    return list_examples(db, get_project(db, name).id)


def test_the_issue_example_in_the_repl(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    result = run(db_path, "chat", "tickets", input="\n".join(ISSUE_SCRIPT) + "\n")
    assert result.exit_code == 0, result.output
    assert "Created project 'tickets'" in result.stderr
    assert "Guided mode" in result.stderr
    assert result.stdout.startswith("Hi! I'll help you write down the task for tickets")
    assert "Got the input. Now its Output:" in result.stdout
    assert "Saved example 2: technical; you have 2 of the 50 to aim for." in result.stdout
    spec = load_spec(get_project(open_database(db_path), "tickets"))
    assert spec.labels == ("billing", "technical", "account", "shipping")
    stored = examples_of(db_path, "tickets")
    assert [(e.prompt, e.response, e.status, e.source) for e in stored] == [
        ("My card was charged twice this month.", "billing", "approved", "typed"),
        ("The app crashes every time I open settings.", "technical", "approved", "typed"),
    ]


def test_the_two_message_example_is_one_example_as_in_the_app(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    setup = [
        "I need a model that classifies customer support tickets.",
        "yes",
        "billing, bug, account, shipping",
    ]
    run(db_path, "chat", "tickets", input="\n".join(setup) + "\n")
    db = open_database(db_path)
    before = load_spec(get_project(db, "tickets"))
    pair = ["Input: You charged my card twice this month.", "Output: billing"]
    result = run(db_path, "chat", "tickets", input="\n".join(pair) + "\n")
    assert result.exit_code == 0, result.output
    stored = examples_of(db_path, "tickets")
    assert [(e.prompt, e.response) for e in stored] == [
        ("You charged my card twice this month.", "billing")
    ]
    assert f"Saved example {stored[0].id}: billing;" in result.stdout
    assert load_spec(get_project(db, "tickets")) == before
    said = [m.content for m in list_messages(db, get_project(db, "tickets").id) if m.role == "user"]
    assert said[-2:] == pair


def test_an_input_typed_over_several_lines_is_one_input(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    lines = ["Input: Hello,", "my parcel never came.", "", "Output: shipping", "Input: x"]
    result = run(db_path, "chat", "tickets", input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    stored = examples_of(db_path, "tickets")
    assert [(e.prompt, e.response) for e in stored] == [
        ("Hello,\nmy parcel never came.", "shipping")
    ]
    # The last input waits for its output in the next session.
    again = run(db_path, "chat", "tickets", input="Output: y\n")
    assert "The input 'x' still waits for its output." in again.stdout
    assert [e.prompt for e in examples_of(db_path, "tickets")] == [
        "Hello,\nmy parcel never came.",
        "x",
    ]


@dataclass(frozen=True)
class Session:
    """A whole `tunesmith chat` session for one task, with its drafting teacher's answer."""

    name: str
    lines: tuple[str, ...]
    teacher_answer: str


def draft_line(prompt: str, output: object, *requirements: str) -> str:
    return json.dumps({"input": prompt, "output": output, "requirements": list(requirements)})


SESSIONS = [
    Session(
        name="tickets",
        lines=(
            "Hi, I need a model that classifies customer support tickets.",
            "yes",
            "billing, technical, account",
            "Cases: angry customers; tickets in German",
            "never answer with anything but a label",
            "yes",
            "Input: I was charged twice! Output: billing",
            "Input: The app will not start. Output: technical",
            "Input: Please change my email address. Output: account",
            "/draft 2",
            "/spec",
        ),
        teacher_answer="\n".join(
            [
                draft_line("Ich wurde doppelt belastet!", "billing", "R2"),
                draft_line("WHY IS MY ACCOUNT LOCKED AGAIN?!", "account", "R1"),
            ]
        ),
    ),
    Session(
        name="orders",
        lines=(
            "I want a model that extracts the customer name and order number from emails as JSON",
            'e.g. {"name": "Ada Lovelace", "order_id": "A-1017"}',
            "The input is one customer email",
            "skip",
            "use null when a field is missing",
            "yes",
            "Input: Hi, Bob here. Order B-22 never arrived.",
            'Output: {"name": "Bob", "order_id": "B-22"}',
            "Input: hello, it's Carol \\",
            "(no order number yet)",
            'Output: {"name": "Carol", "order_id": null}',
            "Input: Dan, order D-9, wrong size",
            "Output: {",
            '  "name": "Dan", "order_id": "D-9"',
            "}",
            "/draft 2",
        ),
        teacher_answer="```json\n"
        + "\n".join(
            [
                draft_line("Eve here, order E-5 is late", {"name": "Eve", "order_id": "E-5"}),
                draft_line("Frank: where is F-6?", {"name": "Frank", "order_id": "F-6"}),
            ]
        )
        + "\n```",
    ),
]


@pytest.mark.parametrize("session", SESSIONS, ids=[s.name for s in SESSIONS])
def test_a_new_user_ends_with_a_spec_typed_examples_and_pending_drafts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session: Session
) -> None:
    teacher = FakeMessagesListChatModel(responses=[AIMessage(session.teacher_answer)])

    def fake_teacher(name: str | None, server: object) -> ChatModelSource:
        return fixed_source(teacher, "scripted teacher")

    monkeypatch.setattr(cli_agent, "teacher_source", fake_teacher)
    db_path = tmp_path / "t.db"
    result = run(db_path, "chat", session.name, input="\n".join(session.lines) + "\n")
    assert result.exit_code == 0, result.output
    assert "Drafted 2 of 2 examples" in result.stdout
    spec = load_spec(get_project(open_database(db_path), session.name))
    stored = examples_of(db_path, session.name)
    typed = [e for e in stored if e.source == "typed"]
    drafted = [e for e in stored if e.source == "drafted"]
    assert {e.status for e in typed} == {"approved"}
    assert {e.status for e in drafted} == {"pending"}
    assert len(typed) == 3 and len(drafted) == 2
    assert spec.system_prompt_origin == "proposed"
    if session.name == "tickets":
        assert spec.goal == "classify customer support tickets"
        assert spec.input_description == "the text of one customer support ticket"
        assert spec.labels == ("billing", "technical", "account")
        assert [r.text for r in spec.requirements] == ["angry customers", "tickets in German"]
        assert spec.constraints == ("never answer with anything but a label",)
        assert [e.tags for e in drafted] == [("R2",), ("R1",)]
        assert re.search(r"\n  billing +1  \(\+1 pending\)\n", result.stdout)
    else:
        assert spec.output_kind == "json" and spec.judging == "json_fields"
        assert spec.json_fields == ("name", "order_id")
        assert spec.input_description == "one customer email"
        assert spec.constraints == ("use null when a field is missing",)
        assert [e.prompt for e in typed] == [
            "Hi, Bob here. Order B-22 never arrived.",
            "hello, it's Carol \n(no order number yet)",
            "Dan, order D-9, wrong size",
        ]
        assert json.loads(typed[2].response) == {"name": "Dan", "order_id": "D-9"}


def test_spec_command_prints_text_and_json(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    run(db_path, "chat", "tickets", input="\n".join(ISSUE_SCRIPT) + "\n")
    text = run(db_path, "spec", "tickets")
    assert text.exit_code == 0
    assert "Output:     one label of billing, technical, account, shipping" in text.stdout
    record = json.loads(run(db_path, "spec", "tickets", "--json").stdout)
    assert record["project"] == "tickets"
    assert record["judged_by"] == "exact_label"
    assert record["coverage"]["labels"]["shipping"] == {"approved": 0, "pending": 0}
    assert record["missing"][0] == "input"
    missing = run(db_path, "spec", "nope")
    assert missing.exit_code == 1 and "no project named 'nope'" in missing.stderr


def test_draft_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "t.db"
    run(db_path, "chat", "tickets", input="\n".join(ISSUE_SCRIPT) + "\n")
    answers = iter(
        [
            draft_line("Where is my parcel?", "shipping") + "\nnot json",
            "nothing useful",
            "still nothing",
        ]
    )

    def fake_teacher(name: str | None, server: object) -> ChatModelSource:
        assert name == "big-model"
        teacher = FakeMessagesListChatModel(responses=[AIMessage(next(answers))])
        # A strong teacher writes whole examples (the weak path has tests of its own).
        return fixed_source(teacher, "big-model")

    monkeypatch.setattr(cli_agent, "teacher_source", fake_teacher)
    first = run(db_path, "draft", "tickets", "1", "--teacher", "big-model")
    assert first.exit_code == 0, first.output
    assert "drafts will be weak" not in first.stderr
    assert first.stdout.startswith("Drafted 1 of 1 examples")
    second = run(db_path, "draft", "tickets", "1", "--teacher", "big-model")
    assert second.exit_code == 1
    assert "No usable drafts out of 1 asked for." in second.stdout
    assert [e.source for e in examples_of(db_path, "tickets")].count("drafted") == 1
    assert run(db_path, "draft", "tickets", "0").exit_code == 2


def test_train_from_the_repl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "t.db"
    early = run(db_path, "chat", "tickets", input="/train\n")
    assert "Cannot start training: project 'tickets' has no approved training examples" in (
        early.stdout
    )

    @dataclass(frozen=True)
    class FakeRun:
        id: int

    started: list[str] = []

    def fake_start_run(db: object, path: Path, project: object, plan: object) -> FakeRun:
        started.append(str(path))
        return FakeRun(7)

    monkeypatch.setattr("trainer.control.jobs.start_run", fake_start_run)
    rows = "\n".join(
        f'{{"prompt": "q{i}", "response": "a{i}", "split": "train"}}' for i in range(3)
    )
    result = run(db_path, "chat", "tickets", input=rows + "\n/train\n/quit\nnever read\n")
    assert "Started run 7 on 3 approved examples" in result.stdout
    assert started == [str(db_path)]
    db = open_database(db_path)
    said = [m.content for m in list_messages(db, get_project(db, "tickets").id)]
    assert "/quit" in said and "never read" not in said


def test_chat_options_and_configuration_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path = tmp_path / "t.db"
    both = run(db_path, "chat", "x", "--local", "--guided", input="")
    assert both.exit_code == 1 and "exclude each other" in both.stderr
    no_endpoint = run(db_path, "chat", "x", "--model", "gpt-4o-mini", input="")
    assert no_endpoint.exit_code == 1
    assert "needs an endpoint: set OPENAI_API_KEY" in no_endpoint.stderr
    monkeypatch.setenv(AGENT_BASE_URL_ENV, "http://localhost:11434/v1")
    no_model = run(db_path, "chat", "x", input="")
    assert no_model.exit_code == 1 and "names no model" in no_model.stderr
    guided = run(db_path, "chat", "x", "--guided", input="")
    assert guided.exit_code == 0 and "Guided mode" in guided.stderr
    assert "/draft uses the local model" in guided.stderr


def settings_of(agent: EndpointSettings, teacher: EndpointSettings | None = None) -> Settings:
    return Settings(agent=agent, teacher=teacher or EndpointSettings(), base_model="m", theme=None)


def test_agent_endpoint() -> None:
    nothing = settings_of(EndpointSettings())
    assert agent_endpoint(nothing, environ={}) is None
    openai = agent_endpoint(
        settings_of(EndpointSettings(model="m")), environ={OPENAI_API_KEY_ENV: "sk-1"}
    )
    assert openai == Endpoint("m", None, "sk-1")
    assert "sk-1" not in repr(openai)
    assert openai is not None and openai.describe() == "m at api.openai.com"
    local = settings_of(EndpointSettings("http://localhost:11434/v1", "x"))
    ollama = agent_endpoint(local, "llama3.1", environ={})
    assert ollama == Endpoint("llama3.1", "http://localhost:11434/v1", None)
    own_key = agent_endpoint(
        settings_of(EndpointSettings(model="m")),
        environ={AGENT_API_KEY_ENV: "k2", OPENAI_API_KEY_ENV: "k1"},
    )
    assert own_key is not None and own_key.api_key == "k2"
    with pytest.raises(InputError, match="needs an endpoint"):
        agent_endpoint(nothing, "m", environ={})
    with pytest.raises(InputError, match=f"^{AGENT_BASE_URL_ENV} is set but names no model"):
        agent_endpoint(
            settings_of(EndpointSettings("http://h/v1")),
            environ={AGENT_BASE_URL_ENV: "http://h/v1"},
        )


def test_teacher_endpoint_defaults_to_the_teacher_then_the_agent() -> None:
    agent = EndpointSettings("http://agent/v1", "agent-model")
    assert teacher_endpoint(settings_of(agent), environ={}) == Endpoint(
        "agent-model", "http://agent/v1", None
    )
    teacher = EndpointSettings("http://teacher/v1", "teacher-model")
    both = settings_of(agent, teacher)
    assert teacher_endpoint(both, environ={}) == Endpoint("teacher-model", "http://teacher/v1")
    assert teacher_endpoint(both, "named", environ={}) == Endpoint("named", "http://teacher/v1")
    model_only = settings_of(agent, EndpointSettings(model="bigger"))
    assert teacher_endpoint(model_only, environ={}) == Endpoint("bigger", "http://agent/v1")
    assert teacher_endpoint(settings_of(EndpointSettings()), environ={}) is None
    with pytest.raises(InputError, match=r"teacher\.base_url in .* is set but names no model"):
        teacher_endpoint(
            settings_of(EndpointSettings(), EndpointSettings("http://t/v1")), environ={}
        )


def test_the_config_file_sets_the_agent_and_the_teacher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.toml").write_text(
        '[agent]\nbase_url = "http://localhost:11434/v1"\nmodel = "qwen2.5:7b"\n'
        '[teacher]\nmodel = "llama3.1:70b"\n',
        encoding="utf-8",
    )
    agent = endpoint_source(None, AGENT_MAX_TOKENS)
    assert agent is not None and agent.name == "qwen2.5:7b at http://localhost:11434/v1"

    def local(max_tokens: int) -> ChatModelSource:
        return fixed_source(FakeMessagesListChatModel(responses=[]), "local")

    teacher = teacher_source(None, local)
    assert teacher.name == "llama3.1:70b at http://localhost:11434/v1"
    assert teacher_source("other", local).name == "other at http://localhost:11434/v1"
    assert teacher_source("local", local).name == "local"
    # The environment overrides the file.
    monkeypatch.setenv(AGENT_MODEL_ENV, "from-env")
    monkeypatch.setenv("TUNESMITH_TEACHER_MODEL", "local")
    agent = endpoint_source(None, AGENT_MAX_TOKENS)
    assert agent is not None and agent.name == "from-env at http://localhost:11434/v1"
    assert teacher_source(None, local).name == "local"


def test_chat_takes_the_configured_agent_and_reports_a_half_set_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[agent]\nbase_url = "http://localhost:9/v1"\n', encoding="utf-8")
    db_path = tmp_path / "t.db"
    no_model = run(db_path, "chat", "x", input="")
    assert no_model.exit_code == 1
    assert f"agent.base_url in {config} is set but names no model" in no_model.stderr
    config.write_text(
        '[agent]\nbase_url = "http://localhost:9/v1"\nmodel = "m"\n', encoding="utf-8"
    )
    model_mode = run(db_path, "chat", "x", input="/quit\n")
    assert model_mode.exit_code == 0, model_mode.output
    assert "Model mode: m at http://localhost:9/v1." in model_mode.stderr


def lines_of(text: str) -> Iterator[str]:
    return iter(text.split("\n"))


@pytest.mark.parametrize(
    ("typed", "messages"),
    [
        ("a\nb", ["a", "b"]),
        # An input and its output are separate messages: the interview pairs them.
        ("Input: x\nmore x\n\nOutput: y\nnext", ["Input: x", "more x", "Output: y", "next"]),
        ('Input: x\nOutput:\n{\n"k": 1\n}\nz', ["Input: x", 'Output:\n{\n"k": 1\n}', "z"]),
        ("Input:\nx", ["Input:\nx"]),
        ("one \\\ntwo\nthree", ["one \ntwo", "three"]),
        ("```\na\n\nb\n```\nc", ["```\na\n\nb\n```", "c"]),
        ("Input: x\n/spec\nd", ["Input: x", "/spec", "d"]),
        ("Input: unfinished", ["Input: unfinished"]),
        ("\n\n", []),
        ("prompt,response\na,b\nc,d\n\ne", ["prompt,response\na,b\nc,d\n", "e"]),
    ],
)
def test_read_messages_groups_lines(typed: str, messages: list[str]) -> None:
    prompts: list[str] = []
    assert list(read_messages(lines_of(typed), prompts.append)) == messages
    assert prompts[0] == "> "
