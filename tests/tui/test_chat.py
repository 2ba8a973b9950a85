"""The Chat area's journeys: describing a task fills the spec and stores examples, /train opens
the run form, base and tuned answer in their own columns (a real server of the tiny run), and
hostile text stays inert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.widgets import Markdown, Static

from agent.coverage import coverage
from agent.interview import Interview
from agent.spec import Requirement, TaskSpec, load_spec
from store.database import open_database
from store.examples import list_examples
from store.messages import list_messages
from store.projects import create_project, get_project
from tests.conftest import TinyRun
from tests.tui.pilot import (
    ANSI_TEXT,
    CLICK_TEXT,
    SIZE,
    choose,
    copy_database,
    demo_project,
    settle,
    wait_until,
)
from trainer.control.launch import BASE_MODEL_NAME, run_model_name
from tui.app import TunesmithApp
from tui.chat_targets import MODEL_MEMORY, Exchange, ModelTalk, conversation, targets_for
from tui.dialogs.help import HelpScreen
from tui.dialogs.new_run import NewRunScreen
from tui.dialogs.project_picker import ProjectPickerScreen
from tui.screens.chat import ChatScreen
from tui.screens.dataset import DatasetScreen
from tui.widgets.chat.spec_panel import spec_summary
from tui.widgets.chat.transcript import ModelAnswer, ModelTurn, agent_markdown
from tui.widgets.compare.prompt_box import PromptBox


def agent_said(screen: Any) -> list[str]:
    """The Markdown source of each agent message in the transcript, oldest first."""
    return [message.source for message in screen.query_one("#chat-log").query(Markdown)]


def person_said(screen: Any) -> list[str]:
    """What each message of the person shows, oldest first."""
    return [str(message.render()) for message in screen.query_one("#chat-log").query(".person")]


async def send(pilot: Any, text: str) -> None:
    """Type ``text`` in the message box, send it and wait for the answer."""
    box = pilot.app.screen.query_one("#chat-input", PromptBox)
    assert box.has_focus
    box.text = text
    await pilot.press("enter")
    await settle(pilot)


@pytest.fixture
def empty_project_db(tmp_path: Path) -> Path:
    """A database with one project and nothing in it."""
    path = tmp_path / "t.db"
    db = open_database(path)
    create_project(db, "tickets")
    db.close()
    return path


async def test_describing_a_task_fills_the_spec_and_stores_the_examples(
    empty_project_db: Path,
) -> None:
    app = TunesmithApp(empty_project_db)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        screen = app.screen
        # No examples yet: the app opens where the task is described.
        assert isinstance(screen, ChatScreen)
        assert "What should the model do?" in agent_said(screen)[-1]
        await send(pilot, "turn support emails into JSON with name, order id and issue")
        await send(pilot, "the body of one customer email")
        await send(pilot, '{"name": "Ada Lovelace", "order_id": "A-1017", "issue": "late"}')
        await send(pilot, "angry customers; emails without an order id")
        await send(
            pilot,
            'Input: I am Bo Chen, order B-2231 never came. Output: {"name": "Bo Chen",'
            ' "order_id": "B-2231", "issue": "not delivered"}',
        )
        panel = str(screen.query_one("#spec-text", Static).render())
        # After each answer the status line says again which mode the agent is in, and why.
        status = str(screen.query_one("#chat-status", Static).render())
        assert status == "Guided mode: set TUNESMITH_AGENT_MODEL for a model to lead"
        assert "turn support emails into JSON" in panel
        assert "the body of one customer email" in panel
        assert "keys name, order_id, issue" in panel
        assert "R1 angry customers" in panel
        assert "1 approved, 0 pending" in panel
        assert any(said.startswith("Saved example 1: {") for said in agent_said(screen))
        assert person_said(screen)[0] == (
            "turn support emails into JSON with name, order id and issue"
        )

        # The Dataset area shows the example typed in Chat.
        await pilot.press("f3")
        await settle(pilot)
        assert isinstance(app.screen, DatasetScreen)
        assert [e.prompt for e in app.screen.window.rows] == [
            "I am Bo Chen, order B-2231 never came."
        ]

    db = open_database(empty_project_db)
    project = get_project(db, "tickets")
    spec = load_spec(project)
    examples = list_examples(db, project.id)
    transcript = list_messages(db, project.id)
    db.close()
    assert spec.goal == "turn support emails into JSON with name, order id and issue"
    assert spec.input_description == "the body of one customer email"
    assert spec.output_kind == "json" and spec.json_fields == ("name", "order_id", "issue")
    assert [r.text for r in spec.requirements] == ["angry customers", "emails without an order id"]
    assert [(e.response, e.status, e.source) for e in examples] == [
        ('{"name": "Bo Chen", "order_id": "B-2231", "issue": "not delivered"}', "approved", "typed")
    ]
    # The whole conversation is stored: the opening, five messages and five answers.
    assert [m.role for m in transcript] == ["assistant"] + ["user", "assistant"] * 5


ISSUE_INPUT = "Input: You charged my card twice this month."
ISSUE_OUTPUT = "Output: billing"


@pytest.fixture
def labelled_project_db(tmp_path: Path) -> Path:
    """A database whose project ``tickets`` has a four-label spec, told through the interview;
    the question about cases is pending."""
    path = tmp_path / "t.db"
    db = open_database(path)
    interview = Interview(db, create_project(db, "tickets"), cwd=tmp_path)
    interview.opening()
    for message in (
        "I need a model that classifies customer support tickets.",
        "yes",
        "billing, bug, account, shipping",
    ):
        interview.handle(message)
    assert interview.spec.labels == ("billing", "bug", "account", "shipping")
    assert interview.pending() == "requirements"
    db.close()
    return path


def type_keys(app: TunesmithApp, text: str) -> None:
    """Queue ``text`` as a terminal delivers keys typed fast: all before any is handled; a
    line feed is ctrl+j, the key tmux's ``send-keys C-j`` sends."""
    for character in text:
        if character == "\n":
            app.post_message(events.Key("ctrl+j", "\n"))
        else:
            app.post_message(events.Key("space" if character == " " else character, character))


def press_enter(app: TunesmithApp) -> None:
    app.post_message(events.Key("enter", "\r"))


def stored_state(db_path: Path) -> tuple[TaskSpec, list[tuple[str, str]]]:
    """The spec of ``tickets`` and its examples as (input, output)."""
    db = open_database(db_path)
    project = get_project(db, "tickets")
    examples = [(e.prompt, e.response) for e in list_examples(db, project.id)]
    db.close()
    return load_spec(project), examples


async def test_an_input_then_its_output_in_two_messages_is_one_example(
    labelled_project_db: Path,
) -> None:
    before, _ = stored_state(labelled_project_db)
    app = TunesmithApp(labelled_project_db)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        screen = app.screen
        type_keys(app, ISSUE_INPUT)
        press_enter(app)
        await settle(pilot)
        assert agent_said(screen)[-1].startswith("Got the input. Now its Output:")
        type_keys(app, ISSUE_OUTPUT)
        press_enter(app)
        await settle(pilot)
        assert person_said(screen)[-2:] == [ISSUE_INPUT, ISSUE_OUTPUT]
        saved = agent_said(screen)[-1]
        panel = str(screen.query_one("#spec-text", Static).render())
    after, examples = stored_state(labelled_project_db)
    assert examples == [("You charged my card twice this month.", "billing")]
    assert saved.startswith("Saved example 1: billing;")
    assert "1 approved, 0 pending" in panel and "Cases  not yet" in panel
    # No case, rule or system prompt took the example's text.
    assert after == before


async def test_an_output_sent_before_the_agent_answered_still_pairs(
    labelled_project_db: Path,
) -> None:
    app = TunesmithApp(labelled_project_db)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        # Both lines at once, as a paste without bracketed paste or tmux's send-keys sends
        # them: the second waits for the agent's answer to the first.
        type_keys(app, ISSUE_INPUT)
        press_enter(app)
        type_keys(app, ISSUE_OUTPUT)
        press_enter(app)
        await settle(pilot)
        await wait_until(pilot, lambda: len(agent_said(app.screen)) >= 2, "both answers")
        await settle(pilot)
        assert person_said(app.screen)[-2:] == [ISSUE_INPUT, ISSUE_OUTPUT]
        assert agent_said(app.screen)[-1].startswith("Saved example 1: billing;")
    assert stored_state(labelled_project_db)[1] == [
        ("You charged my card twice this month.", "billing")
    ]


async def test_ctrl_j_puts_the_output_on_a_new_line_of_one_message(
    labelled_project_db: Path,
) -> None:
    before, _ = stored_state(labelled_project_db)
    app = TunesmithApp(labelled_project_db)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        type_keys(app, f"{ISSUE_INPUT}\n{ISSUE_OUTPUT}")
        await settle(pilot)
        box = app.screen.query_one("#chat-input", PromptBox)
        assert box.text == f"{ISSUE_INPUT}\n{ISSUE_OUTPUT}"
        press_enter(app)
        await settle(pilot)
        assert person_said(app.screen)[-1] == f"{ISSUE_INPUT}\n{ISSUE_OUTPUT}"
        assert agent_said(app.screen)[-1].startswith("Saved example 1: billing;")
    after, examples = stored_state(labelled_project_db)
    assert examples == [("You charged my card twice this month.", "billing")]
    assert after == before


async def test_coming_back_shows_the_conversation_without_a_second_greeting(
    empty_project_db: Path,
) -> None:
    for _ in range(2):
        app = TunesmithApp(empty_project_db)
        async with app.run_test(size=SIZE) as pilot:
            await choose(pilot, "tickets")
            await send(pilot, "sort support tickets by topic")
            # Away and back in one session: the agent does not greet again.
            await pilot.press("f3", "f2")
            await settle(pilot)
            said, typed = agent_said(app.screen), person_said(app.screen)
    assert said[0].startswith("Hi! I'll help you")
    assert said[-2].startswith("Welcome back. So far: goal: sort support tickets by topic")
    assert [text for text in said if text.startswith("Welcome back")] == [said[-2]]
    assert typed == ["sort support tickets by topic"] * 2


async def test_slash_train_opens_the_new_run_form(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    demo_project(db_path)
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "reviews")
        await pilot.press("1")
        await settle(pilot)
        await send(pilot, "/train")
        await settle(pilot)
        assert isinstance(app.screen, NewRunScreen)
        # Four approved train rows and one eval row, as the form says.
        intro = str(app.screen.query_one("#new-run-intro", Static).render())
        assert "4 approved train rows" in intro, intro


async def test_slash_quit_leaves_the_app(empty_project_db: Path) -> None:
    app = TunesmithApp(empty_project_db)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        await send(pilot, "/quit")
        await pilot.pause()
    assert app.return_code == 0


async def test_hostile_text_stays_inert(empty_project_db: Path) -> None:
    app = TunesmithApp(empty_project_db)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        screen = app.screen
        await send(pilot, f"{CLICK_TEXT} {ANSI_TEXT} [/]")
        assert app.is_running
        shown = person_said(screen)[-1]
        assert shown == f"{CLICK_TEXT} [31mred[0m and a bell [/]"
        # The agent quoted the text back as its goal: as text, without the escapes.
        panel = str(screen.query_one("#spec-text", Static).render())
        assert CLICK_TEXT in panel and "\x1b" not in panel and "\x07" not in panel
        assert "\x1b" not in "".join(agent_said(screen))
        await pilot.click("#chat-log", offset=(10, 8))
        await pilot.pause()
        assert app.is_running and app.return_code is None


async def test_a_line_typed_fast_is_sent_whole(empty_project_db: Path) -> None:
    app = TunesmithApp(empty_project_db)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        screen = app.screen
        # As a terminal delivers a pasted or fast-typed line: every key queued before any
        # is handled. Enter must not overtake the letters before it.
        for character in "classify tickets":
            key = "space" if character == " " else character
            app.post_message(events.Key(key, character))
        app.post_message(events.Key("enter", "\r"))
        await settle(pilot)
        assert person_said(screen) == ["classify tickets"]
        assert screen.query_one("#chat-input", PromptBox).text == ""


async def test_base_and_tuned_answer_in_their_own_columns(
    completed_tiny_run: TinyRun, tmp_path: Path
) -> None:
    db_path = copy_database(completed_tiny_run.db_path, tmp_path / "copy.db")
    run_id = completed_tiny_run.run_id
    app = TunesmithApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "colours")
        await pilot.press("1")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await pilot.press("ctrl+t", "ctrl+t")
        assert screen.target.key == f"both-{run_id}"
        assert not screen.query_one("#chat-spec").display
        await send(pilot, "Name colour number 3.")
        turn = screen.query_one(ModelTurn)
        await wait_until(pilot, lambda: screen._turn is None, "both answers", 120)
        await settle(pilot)
        base, tuned = (str(turn.answer(side).render()) for side in ("base", "tuned"))
        assert base and tuned and base != tuned
        assert [a.border_title for a in turn.query(ModelAnswer)] == [
            "base",
            f"tuned · run {run_id}",
        ]
        exchange = screen._talk.exchanges[-1]
        assert set(exchange.answers) == {BASE_MODEL_NAME, run_model_name(run_id)}
        assert exchange.answers[run_model_name(run_id)].replace("\x1b", "") == tuned

        # A second prompt goes on from the first: each model gets its own earlier answer.
        await send(pilot, "And number 4?")
        await wait_until(pilot, lambda: screen._turn is None, "the second answers", 120)
        assert len(screen.query(ModelTurn)) == 2
        # The tuned run alone, then a fresh start.
        await pilot.press("ctrl+t")
        assert screen.target.key == f"run-{run_id}"
        await pilot.press("ctrl+n")
        assert not screen.query(ModelTurn) and screen._talk.exchanges == []
        running = app.services.servers.running
        assert running is not None
        process = running.handle.process
    assert process.poll() is not None


async def test_talking_to_models_without_a_run_offers_the_base_model(
    empty_project_db: Path,
) -> None:
    app = TunesmithApp(empty_project_db)
    async with app.run_test(size=SIZE) as pilot:
        notes: list[str] = []
        app.notify = lambda message, **kwargs: notes.append(message)  # type: ignore[method-assign]
        await choose(pilot, "tickets")
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await pilot.press("ctrl+t")
        assert screen.target.key == "base"
        assert notes == ["Only the base model until a run completes: train one in Train (F4)."]
        await pilot.press("ctrl+t")
        assert screen.target.key == "agent"
        assert screen.query_one("#chat-spec").display


def test_targets_list_the_agent_base_then_each_run_newest_first() -> None:
    keys = [target.key for target in targets_for([3, 7])]
    assert keys == ["agent", "base", "both-7", "run-7", "both-3", "run-3"]
    both = targets_for([7])[2]
    assert [(s.side, s.model) for s in both.sides] == [("base", "base"), ("tuned", "run-7")]


def test_each_model_hears_its_own_earlier_answers_and_only_the_last_few() -> None:
    exchanges = [Exchange("q0", {"base": "b0", "run-1": "t0"}), Exchange("q1", {"run-1": "t1"})]
    assert conversation(exchanges, "base", "q2") == [
        {"role": "user", "content": "q0"},
        {"role": "assistant", "content": "b0"},
        {"role": "user", "content": "q2"},
    ]
    assert [m["content"] for m in conversation(exchanges, "run-1", "q2")] == [
        "q0",
        "t0",
        "q1",
        "t1",
        "q2",
    ]
    many = [Exchange(f"q{i}", {"base": f"a{i}"}) for i in range(MODEL_MEMORY + 3)]
    sent = conversation(many, "base", "now")
    assert len(sent) == 2 * MODEL_MEMORY + 1
    assert sent[0]["content"] == "q3"


def test_agent_text_keeps_its_lines_and_indents_as_markdown() -> None:
    text = "Commands:\n  /spec   show it\n- a list\n\n```\n  code\n```\nbell\x07 [b]x[/b]"
    assert agent_markdown(text).split("\n") == [
        "Commands:  ",
        "\u00a0\u00a0/spec   show it  ",
        "- a list  ",
        "",
        "```",
        "  code",
        "```",
        "bell [b]x[/b]  ",
    ]


def test_the_spec_panel_marks_the_part_asked_now() -> None:
    spec = TaskSpec(
        goal="sort tickets", requirements=(Requirement("R1", "angry"),), skipped=("constraints",)
    )
    summary = spec_summary(spec, coverage(spec, []), ["input", "output"]).plain
    assert summary.splitlines()[:5] == [
        "Goal",
        "sort tickets",
        "Input  not yet  ← now",
        "Output  not yet",
        "Cases",
    ]
    assert "Rules  skipped" in summary
    assert "R1: 0" in summary


async def test_choosing_the_same_project_again_shows_its_conversation_once(
    empty_project_db: Path,
) -> None:
    app = TunesmithApp(empty_project_db)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        await send(pilot, "sort support tickets by topic")
        before = agent_said(app.screen)
        await pilot.press("ctrl+o")
        await choose(pilot, "tickets")
        assert agent_said(app.screen) == before
        assert person_said(app.screen) == ["sort support tickets by topic"]


async def test_the_tab_line_and_the_help_give_the_keys_that_work_while_typing(
    empty_project_db: Path,
) -> None:
    app = TunesmithApp(empty_project_db)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        tabs = [str(tab.render()) for tab in app.screen.query("AreaTab")]
        assert tabs == ["F2 Chat", "F3 Dataset", "F4 Train", "F5 Compare"]
        project = str(app.screen.query_one("#area-bar-project", Static).render())
        assert project == "^o tickets"
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = " ".join(str(key.render()) for key in app.screen.query(".help-key"))
        assert "ctrl+t" in keys and "ctrl+n" in keys
        await pilot.press("escape", "ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, ProjectPickerScreen)


def test_model_talk_keeps_complete_answers_per_model() -> None:
    talk = ModelTalk()
    both = targets_for([7])[2]
    sent = talk.ask(both, "q0")
    assert set(sent) == {"base", "tuned"} and talk.request == 1
    assert not talk.answered("tuned", "t0")
    assert [side.side for side in talk.unanswered()] == ["base"]
    assert talk.answered("base", "b0") and talk.unanswered() == []
    assert talk.ask(both, "q1")["tuned"][1] == {"role": "assistant", "content": "t0"}
    talk.forget()
    assert talk.exchanges == [] and talk.request == 2


SLOW_INPUTS = [f"My order number {n} never arrived at my house" for n in range(40)]
"""What the scripted weak teacher writes, one input a call."""


async def test_draft_shows_its_progress_and_esc_stops_it_keeping_the_drafts(
    labelled_project_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from agent.models import fixed_source
    from tui import chat_agent

    teacher = FakeListChatModel(responses=SLOW_INPUTS, sleep=0.3)
    monkeypatch.setattr(
        chat_agent,
        "teacher_model",
        lambda services, project: fixed_source(teacher, "tiny", weak=True),
    )
    monkeypatch.setattr(
        chat_agent,
        "drafts_labeller",
        lambda database, project_id, services: lambda text: "shipping",
    )
    app = TunesmithApp(labelled_project_db)
    async with app.run_test(size=SIZE) as pilot:
        await choose(pilot, "tickets")
        screen = app.screen
        for line in ("Input: Where is my parcel?", "Output: shipping"):
            type_keys(app, line)
            press_enter(app)
            await settle(pilot)
        type_keys(app, "/draft 20")
        press_enter(app)
        status = screen.query_one("#chat-status", Static)
        for _ in range(200):
            await pilot.pause(0.05)
            if "drafted 2/20" in str(status.render()):
                break
        assert "drafted 2/20 · esc stops" in str(status.render())
        await pilot.press("escape")
        await settle(pilot)
        reply = agent_said(screen)[-1]
    _, examples = stored_state(labelled_project_db)
    drafted = examples[1:]
    assert 2 <= len(drafted) < 20
    # Answered by the labeller; an input written during the cancelled call waits unlabeled.
    assert {output for _, output in drafted} <= {"shipping", ""}
    assert sum(output == "shipping" for _, output in drafted) >= 2
    assert f"Cancelled after {len(drafted)} of 20 drafts" in reply
