"""Guided interviews, table-driven: a transcript goes in, a spec and examples come out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from agent.answers import proposed_input
from agent.interview import Interview
from agent.models import fixed_source
from agent.spec import TaskSpec, load_spec, save_spec
from store.database import open_database
from store.examples import Example, list_examples
from store.messages import list_messages
from store.projects import create_project, get_project


@dataclass(frozen=True)
class Case:
    """One guided interview: what the person types and what must be stored afterwards."""

    id: str
    messages: tuple[str, ...]
    spec: dict[str, Any]
    examples: tuple[tuple[str, str], ...] = ()
    replies: tuple[str, ...] = ()
    """Substrings that must appear somewhere in the agent's replies."""
    not_in_replies: tuple[str, ...] = ()
    sources: tuple[str, ...] = field(default=())


CASES = [
    Case(
        id="classification in order",
        messages=(
            "I need a model that classifies customer support tickets.",
            "yes",
            "billing, technical, account",
            "skip",
            "none",
            "yes",
            "Input: I was charged twice this month. Output: billing",
        ),
        spec={
            "goal": "classify customer support tickets",
            "input_description": "the text of one customer support ticket",
            "output_kind": "labels",
            "labels": ("billing", "technical", "account"),
            "judging": "exact_label",
            "skipped": ("requirements", "constraints"),
            "system_prompt_origin": "proposed",
        },
        examples=(("I was charged twice this month.", "billing"),),
        replies=("Which labels should it choose from?", "I drafted a system prompt"),
    ),
    Case(
        id="the example from the issue, answered out of order",
        messages=(
            "I need a model that classifies customer support tickets.",
            "The labels are billing, technical, account and shipping.",
            "Input: My card was charged twice this month.\nOutput: billing",
            "Input: The app crashes when I open the settings page.\nOutput: technical",
        ),
        spec={"labels": ("billing", "technical", "account", "shipping"), "output_kind": "labels"},
        examples=(
            ("My card was charged twice this month.", "billing"),
            ("The app crashes when I open the settings page.", "technical"),
        ),
    ),
    Case(
        id="examples before anything else, then labels, then the goal",
        messages=(
            "Input: where is my parcel? Output: shipping",
            "labels: shipping, billing",
            "I want a model to route support emails",
        ),
        spec={
            "goal": "route support emails",
            "labels": ("shipping", "billing"),
            "output_kind": "labels",
        },
        examples=(("where is my parcel?", "shipping"),),
    ),
    Case(
        id="labels named in the goal sentence",
        messages=("I need a model that sorts support emails into billing, technical or account.",),
        spec={
            "goal": "sort support emails into billing, technical or account",
            "labels": ("billing", "technical", "account"),
        },
    ),
    Case(
        id="labels a routing goal sends to",
        messages=("route support tickets to billing, bug, account or shipping", "yes"),
        spec={
            "labels": ("billing", "bug", "account", "shipping"),
            "output_kind": "labels",
            "input_description": "the text of one support ticket",
        },
        not_in_replies=("Which labels should it choose from?",),
    ),
    Case(
        id="a sentence where labels were asked for is asked again, not free text",
        messages=(
            "I need a model that classifies support tickets",
            "yes",
            "tickets about refunds are billing",
            "billing, bug, account",
        ),
        spec={"output_kind": "labels", "labels": ("billing", "bug", "account")},
        replies=("I need the labels themselves, as a list",),
        not_in_replies=("free text",),
    ),
    Case(
        id="no style names the part it declines, whatever question is pending",
        messages=(
            "route support tickets to billing, bug, account or shipping",
            "yes",
            "no style, just the label",
            "no rules",
        ),
        spec={
            "labels": ("billing", "bug", "account", "shipping"),
            "skipped": ("style", "constraints"),
            "requirements": (),
        },
        replies=("OK, no style.", "OK, no rules.", "Which cases must the examples cover"),
    ),
    Case(
        id="the person corrects the labels",
        messages=(
            "Sort tickets by topic",
            "The categories are billing and tech",
            "no, the labels are billing, shipping and returns",
        ),
        spec={"labels": ("billing", "shipping", "returns")},
        replies=("Changed. Answers: one label of billing, shipping, returns",),
    ),
    Case(
        id="a bare 'no, ...' corrects the part just confirmed",
        messages=("Summarize meeting notes", "no, summarize sales calls into three bullet points"),
        spec={"goal": "summarize sales calls into three bullet points"},
        replies=("Changed. Goal: summarize sales calls",),
    ),
    Case(
        id="junk gets a polite re-ask and changes nothing",
        messages=("asdf", "%%% ###", "{oops", "qwerty asdfgh"),
        spec={"goal": None, "output_kind": None},
        replies=("Sorry, I did not understand that.", "That looks like JSON, but I could not"),
    ),
    Case(
        id="junk mid-interview keeps the question",
        messages=(
            "Classify product reviews by sentiment",
            "!!!???",
            "positive / negative / neutral",
        ),
        spec={"labels": ("positive", "negative", "neutral")},
        replies=("Sorry, I did not understand that.",),
    ),
    Case(
        id="JSON extraction with a sample and a multi-line pair",
        messages=(
            "I want a model that extracts the name and order number from support emails as JSON.",
            '{"name": "Ada Lovelace", "order_id": "A-1017"}',
            "yes",
            "Input: Hi, Bob here, order B-22 never came.\n"
            'Output: {"name": "Bob", "order_id": "B-22"}',
        ),
        spec={
            "output_kind": "json",
            "json_fields": ("name", "order_id"),
            "judging": "json_fields",
            "input_description": "the text of one support email",
        },
        examples=(("Hi, Bob here, order B-22 never came.", '{"name": "Bob", "order_id": "B-22"}'),),
    ),
    Case(
        id="a JSON sample in a code fence after some words",
        messages=(
            "Pull the invoice number and total out of invoices",
            'The output looks like:\n```json\n{"invoice": "INV-1", "total": 12.5,}\n```',
        ),
        spec={"output_kind": "json", "json_fields": ("invoice", "total")},
    ),
    Case(
        id="JSON answers inferred from typed examples",
        messages=(
            "Turn addresses into structured records",
            'Input: 1 Main St, Springfield\nOutput: {"street": "1 Main St", "city": "Springfield"}',
        ),
        spec={"output_kind": "json", "json_fields": ("street", "city")},
        examples=(("1 Main St, Springfield", '{"street": "1 Main St", "city": "Springfield"}'),),
    ),
    Case(
        id="a JSON goal without keys takes them from the examples given",
        messages=(
            "turn support emails into JSON",
            'Input: Bo here, order B-2 is late\nOutput: {"name": "Bo", "order_id": "B-2"}',
        ),
        spec={"output_kind": "json", "json_fields": ("name", "order_id")},
        examples=(("Bo here, order B-2 is late", '{"name": "Bo", "order_id": "B-2"}'),),
    ),
    Case(
        id="pasted JSONL keeps the good lines and names the bad one",
        messages=(
            '{"prompt": "2+2?", "response": "4"}\n'
            '{"prompt": broken}\n'
            '{"input": "3+3?", "output": "6"}',
        ),
        spec={},
        examples=(("2+2?", "4"), ("3+3?", "6")),
        replies=("Saved examples 1-2 from the pasted rows", "line 2: not valid JSON"),
        sources=("imported", "imported"),
    ),
    Case(
        id="pasted CSV",
        messages=("input,output\nhello,greeting\nbye now,farewell",),
        spec={},
        examples=(("hello", "greeting"), ("bye now", "farewell")),
        sources=("imported", "imported"),
    ),
    Case(
        id="arrow pairs once the answer format is known",
        messages=(
            "Classify tickets",
            "labels are shipping, billing",
            "where is my parcel? -> shipping\nrefund my money -> billing",
        ),
        spec={"labels": ("shipping", "billing")},
        examples=(("where is my parcel?", "shipping"), ("refund my money", "billing")),
    ),
    Case(
        id="free-text answers ask for a style",
        messages=(
            "Write friendly replies to customer reviews",
            "a customer review of our hotel",
            "a short reply that thanks the customer",
            "skip",
            "skip",
            "warm and brief, in English",
        ),
        spec={
            "input_description": "a customer review of our hotel",
            "output_kind": "free_text",
            "output_description": "a short reply that thanks the customer",
            "style": "warm and brief, in English",
            "judging": "free_text",
        },
        replies=("What style should the answers have",),
    ),
    Case(
        id="rules, cases and a target stated out of order",
        messages=(
            "Cases: angry customers; tickets in German",
            "never mention internal tools",
            "aim for 120 examples",
            "Classify tickets",
        ),
        spec={
            "requirement_texts": ("angry customers", "tickets in German"),
            "requirement_ids": ("R1", "R2"),
            "constraints": ("never mention internal tools",),
            "target_examples": 120,
            "goal": "Classify tickets",
        },
    ),
    Case(
        id="a system prompt of one's own",
        messages=(
            "Classify tickets",
            "each ticket's text",
            "billing, technical",
            "skip",
            "skip",
            "You sort tickets for the ACME help desk. Reply with the label only.",
        ),
        spec={
            "system_prompt": "You sort tickets for the ACME help desk. Reply with the label only.",
            "system_prompt_origin": "custom",
        },
    ),
    Case(
        id="an accepted system prompt follows later label changes",
        messages=(
            "Classify tickets",
            "each ticket's text",
            "billing, technical",
            "skip",
            "skip",
            "yes",
            "add label spam",
        ),
        spec={"labels": ("billing", "technical", "spam"), "system_prompt_contains": "spam"},
    ),
    Case(
        id="an answer outside the labels is kept with a note",
        messages=("Classify tickets", "labels: billing, technical", "Input: hi\nOutput: refund"),
        spec={},
        examples=(("hi", "refund"),),
        replies=("'refund' is not one of the labels",),
    ),
    Case(
        id="an input without its output waits for it",
        messages=("Classify tickets", "Input: my parcel is late"),
        spec={},
        replies=("Got the input. Now its Output:",),
    ),
    Case(
        id="an input and its output in two messages are one example",
        messages=(
            "Classify tickets",
            "labels: billing, bug",
            "Input: my card was charged twice",
            "Output: billing",
        ),
        spec={"requirements": (), "constraints": ()},
        examples=(("my card was charged twice", "billing"),),
        replies=("Saved example 1: billing; you have 1 of the 50",),
    ),
    Case(
        id="a new line lost between the input and its output",
        messages=("Input: You charged my card twice.Output: billing",),
        spec={},
        examples=(("You charged my card twice.", "billing"),),
    ),
    Case(
        id="arrow lines are examples before the answer format is known",
        messages=("where is my parcel? -> shipping",),
        spec={"goal": None},
        examples=(("where is my parcel?", "shipping"),),
    ),
]


def run_interview(db: sqlite_utils.Database, messages: tuple[str, ...], cwd: Path) -> list[str]:
    project = create_project(db, "task")
    interview = Interview(db, project, cwd=cwd)
    replies = [interview.opening()]
    replies += [interview.handle(message).text for message in messages]
    return replies


def spec_value(spec: TaskSpec, key: str) -> object:
    if key == "requirement_texts":
        return tuple(r.text for r in spec.requirements)
    if key == "requirement_ids":
        return tuple(r.id for r in spec.requirements)
    if key == "system_prompt_contains":
        return spec.system_prompt
    return getattr(spec, key)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_guided_interview(case: Case, tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    replies = run_interview(db, case.messages, tmp_path)
    spec = load_spec(get_project(db, "task"))
    for key, expected in case.spec.items():
        if key == "system_prompt_contains":
            assert expected in (spec.system_prompt or "")
        else:
            assert spec_value(spec, key) == expected, key
    stored: list[Example] = list_examples(db, get_project(db, "task").id)
    assert [(e.prompt, e.response) for e in stored] == list(case.examples)
    assert {e.status for e in stored} <= {"approved"}
    expected_sources = case.sources or ("typed",) * len(case.examples)
    assert tuple(e.source for e in stored) == expected_sources
    everything = "\n".join(replies)
    for expected_text in case.replies:
        assert expected_text in everything
    for unexpected in case.not_in_replies:
        assert unexpected not in everything


def test_transcript_alternates_and_a_new_session_picks_up(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    run_interview(db, ("Classify tickets", "labels: a1, b2"), tmp_path)
    project = get_project(db, "task")
    roles = [m.role for m in list_messages(db, project.id)]
    assert roles == ["assistant", "user", "assistant", "user", "assistant"]
    again = Interview(db, project, cwd=tmp_path)
    opening = again.opening()
    assert opening.startswith("Welcome back. So far: goal: Classify tickets; answers: one label")
    assert again.history()[-1].content == opening


def test_a_file_path_imports_and_slash_import_reports_bad_rows(tmp_path: Path) -> None:
    good = tmp_path / "rows.jsonl"
    good.write_text('{"prompt": "a?", "response": "b"}\n', encoding="utf-8")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("prompt,response\nc?,d\n,\nonly-one-cell\n", encoding="utf-8")
    db = open_database(tmp_path / "t.db")
    replies = run_interview(
        db, ("rows.jsonl", "/import mixed.csv", "/import nowhere.jsonl"), tmp_path
    )
    stored = list_examples(db, get_project(db, "task").id)
    assert [(e.prompt, e.source) for e in stored] == [("a?", "imported"), ("c?", "imported")]
    assert "expected 2 columns, got 1" in replies[2]
    assert "no such file or folder" in replies[3]


def test_slash_commands(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "task")
    interview = Interview(db, project, cwd=tmp_path)
    assert "/draft N" in interview.handle("/help").text
    assert interview.handle("/examples").text.startswith("No examples yet.")
    assert "Goal:       (missing)" in interview.handle("/spec").text
    assert interview.handle("/train").action == "train"
    assert interview.handle("/quit").action == "quit"
    assert "Unknown command /nope" in interview.handle("/nope").text
    assert "No teacher model is configured" in interview.handle("/draft 3").text
    assert "a number from 1 to 200" in interview.handle("/draft lots").text
    assert "I need the goal" in interview.handle("/skip").text


@pytest.mark.parametrize(
    ("goal", "expected"),
    [
        ("classify customer support tickets", "the text of one customer support ticket"),
        ("extract names from support emails as JSON", "the text of one support email"),
        ("translate product descriptions into German", "the text of one product description"),
        ("make people happy", None),
    ],
)
def test_proposed_input_from_the_goal(goal: str, expected: str | None) -> None:
    assert proposed_input(TaskSpec(goal=goal)) == expected


ISSUE_SETUP = (
    "I need a model that classifies customer support tickets.",
    "yes",
    "billing, bug, account, shipping",
)
"""The spec of the issue's journey: four labels; the question about cases is pending."""

ISSUE_INPUT = "Input: You charged my card twice this month."


def issue_interview(tmp_path: Path) -> Interview:
    db = open_database(tmp_path / "t.db")
    interview = Interview(db, create_project(db, "tickets"), cwd=tmp_path)
    interview.opening()
    for message in ISSUE_SETUP:
        interview.handle(message)
    return interview


def test_the_issue_example_in_two_messages_is_one_example(tmp_path: Path) -> None:
    interview = issue_interview(tmp_path)
    before = interview.spec
    assert before.labels == ("billing", "bug", "account", "shipping")
    assert interview.pending() == "requirements"
    first = interview.handle(ISSUE_INPUT).text
    assert first.startswith("Got the input. Now its Output:")
    assert list_examples(interview.db, interview.project_id) == []
    second = interview.handle("Output: billing").text
    stored = list_examples(interview.db, interview.project_id)
    assert [(e.prompt, e.response, e.source) for e in stored] == [
        ("You charged my card twice this month.", "billing", "typed")
    ]
    assert second.startswith(f"Saved example {stored[0].id}: billing; you have 1 of the 50")
    # The spec is as it was: no case, rule or system prompt took the example's text.
    assert interview.spec == before
    assert "Which cases must the examples cover" in second
    # The transcript keeps each message as typed.
    said = [m.content for m in list_messages(interview.db, interview.project_id)]
    assert said[-4:-2] == [ISSUE_INPUT, first] and said[-2:] == ["Output: billing", second]


def test_a_held_input_outlives_the_session(tmp_path: Path) -> None:
    first = issue_interview(tmp_path)
    first.handle(ISSUE_INPUT)
    project = get_project(first.db, "tickets")
    again = Interview(first.db, project, cwd=tmp_path)
    opening = again.opening()
    assert "The input 'You charged my card twice thi…' still waits for its output" in opening
    assert again.handle("Output: billing").text.startswith("Saved example 1: billing")


def test_after_an_input_a_bare_label_or_more_lines_or_commands(tmp_path: Path) -> None:
    interview = issue_interview(tmp_path)
    interview.handle("Input: Hello,")
    assert interview.handle("my parcel never came.").text.startswith(
        "Added that to the input (2 lines now). Now its Output:"
    )
    # A command in between keeps the input and says so.
    spec_reply = interview.handle("/spec").text
    assert "Goal:" in spec_reply and spec_reply.endswith("still waits for its Output.)")
    assert interview.handle("shipping").text.startswith("Saved example 1: shipping")
    # Several pairs, the last one's output in the next message.
    reply = interview.handle("Input: a Output: bug\nInput: b Output: account\nInput: c").text
    assert reply.startswith("Saved examples 2-3; you have 3 of the 50")
    assert "Got the input 'c'. Now its Output:" in reply
    interview.handle("Output: bug")
    stored = [(e.prompt, e.response) for e in list_examples(interview.db, interview.project_id)]
    assert stored == [
        ("Hello,\nmy parcel never came.", "shipping"),
        ("a", "bug"),
        ("b", "account"),
        ("c", "bug"),
    ]
    assert interview.spec.requirements == ()


def test_where_examples_are_asked_a_bare_input_waits_for_its_label(tmp_path: Path) -> None:
    interview = issue_interview(tmp_path)
    for message in ("skip", "skip", "yes"):
        interview.handle(message)
    assert interview.pending() == "examples"
    assert interview.next_question().endswith("Or send an input, then its label.")
    held = interview.handle("the app crashes when I upload a photo").text
    assert held.startswith("Got the input 'the app crashes when I")
    assert "or just the label" in held
    assert list_examples(interview.db, interview.project_id) == []
    # Another session reads the held input back from the transcript.
    again = Interview(interview.db, get_project(interview.db, "tickets"), cwd=tmp_path)
    assert "still waits for its output" in again.opening()
    assert again.handle("bug").text.startswith("Saved example 1: bug")
    stored = [(e.prompt, e.response) for e in list_examples(interview.db, interview.project_id)]
    assert stored == [("the app crashes when I upload a photo", "bug")]


@pytest.mark.parametrize(
    "typed",
    [
        "broke after two days. waste of money - negative",
        "broke after two days. waste of money – Negative.",
        "broke after two days. waste of money | negative",
        "broke after two days. waste of money (negative)",
        "broke after two days. waste of money\tnegative",
    ],
)
def test_where_examples_are_asked_a_label_after_a_dash_is_its_label(
    typed: str, tmp_path: Path
) -> None:
    db = open_database(tmp_path / "t.db")
    interview = Interview(db, create_project(db, "reviews"), cwd=tmp_path)
    interview.opening()
    for message in ("tell if a product review is positive or negative", "just the review text"):
        interview.handle(message)
    interview.handle("positive or negative")
    # Before the examples are asked for, such a line may be words about the task.
    assert interview.pending() == "requirements"
    interview.handle("sarcasm - negative")
    assert list_examples(db, interview.project_id) == []
    while interview.pending() != "examples":
        interview.handle("skip")
    reply = interview.handle(f"{typed}\nGreat blender (the red one) - positive").text
    assert reply.startswith("Saved examples 1-2")
    stored = [(e.prompt, e.response) for e in list_examples(db, interview.project_id)]
    assert stored == [
        ("broke after two days. waste of money", "negative"),
        ("Great blender (the red one)", "positive"),
    ]
    # A dash that ends in no label is no example: the line waits for its label.
    held = interview.handle("a well-made thing - mostly").text
    assert held.startswith("Got the input 'a well-made thing - mostly'")


def test_after_a_bare_input_another_input_is_the_next_one(tmp_path: Path) -> None:
    """Two reviews typed one after the other, the first without its label, stay two rows:
    the first is kept without an answer, the label goes to the second."""
    interview = issue_interview(tmp_path)
    for message in ("skip", "skip", "yes"):
        interview.handle(message)
    interview.handle("My parcel never came.")
    reply = interview.handle("Also I was charged twice for it").text
    assert reply.startswith("The input 'My parcel never came.' is kept without its output")
    assert "F3, then l" in reply and "tunesmith label tickets" in reply
    assert "Got the input 'Also I was charged twice" in reply
    # A mistyped label is refused: the input stays as it was, the label still counts.
    refused = interview.handle("biling").text
    assert refused.startswith("Not an output: 'biling' is not one of the labels")
    assert "The input 'Also I was charged twice" in refused
    again = Interview(interview.db, get_project(interview.db, "tickets"), cwd=tmp_path)
    assert "The input 'Also I was charged twice" in again.opening()
    assert again.handle("billing").text.startswith("Saved example 2: billing")
    rows = list_examples(interview.db, interview.project_id)
    assert [(e.prompt, e.response, e.status) for e in rows] == [
        ("My parcel never came.", "", "pending"),
        ("Also I was charged twice for it", "billing", "approved"),
    ]


def test_a_free_text_task_asks_for_marked_examples_instead(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    interview = Interview(db, create_project(db, "notes"), cwd=tmp_path)
    interview.opening()
    for message in ("Summarize meeting notes", "the notes of one meeting", "three bullet points"):
        interview.handle(message)
    for _ in range(4):
        interview.handle("skip")
    assert interview.pending() == "examples"
    # Its answer could not be told from more lines of the input.
    reply = interview.handle("we agreed to ship on Friday").text
    assert reply.startswith("I expected an example there.")
    assert "Or send an input" not in reply


def test_a_held_input_is_dropped_by_skip_or_by_a_new_example(tmp_path: Path) -> None:
    interview = issue_interview(tmp_path)
    interview.handle("Input: first")
    reply = interview.handle("Input: second").text
    # A new example drops nothing typed: the first input is kept to label later.
    assert reply.startswith("The input 'first' is kept without its output")
    assert "Got the input. Now its Output:" in reply
    assert interview.handle("/skip").text.startswith("Dropped the input 'second'.")
    # Nothing is held now: /skip skips the pending question again.
    assert interview.handle("/skip").text.startswith("Skipped.")
    interview.handle("Input: third")
    assert interview.handle("skip").text.startswith("Dropped the input 'third'.")
    rows = list_examples(interview.db, interview.project_id)
    assert [(e.prompt, e.response, e.status) for e in rows] == [("first", "", "pending")]


def answer_to(tmp_path: Path, setup: tuple[str, ...]) -> tuple[TaskSpec, TaskSpec, str, str]:
    """The spec before and after "Output: bug" answers the question ``setup`` leads to."""
    db = open_database(tmp_path / "t.db")
    interview = Interview(db, create_project(db, "task"), cwd=tmp_path)
    interview.opening()
    for message in setup:
        interview.handle(message)
    before, pending = interview.spec, interview.pending()
    reply = interview.handle("Output: bug").text
    assert pending is not None
    return before, interview.spec, pending, reply


@pytest.mark.parametrize(
    ("setup", "question"),
    [
        ((), "goal"),
        (ISSUE_SETUP, "requirements"),
        ((*ISSUE_SETUP, "skip"), "constraints"),
        (
            (
                "Write friendly replies to customer reviews",
                "a customer review of our hotel",
                "a short reply that thanks the customer",
                "skip",
                "skip",
            ),
            "style",
        ),
        ((*ISSUE_SETUP, "skip", "skip"), "system_prompt"),
    ],
)
def test_an_output_is_never_an_answer_about_the_spec(
    tmp_path: Path, setup: tuple[str, ...], question: str
) -> None:
    before, after, pending, reply = answer_to(tmp_path, setup)
    assert pending == question
    assert after == before
    assert "the output 'bug' has no input before it" in reply


def test_model_mode_pairs_the_two_messages_and_keeps_examples_out_of_the_spec(
    tmp_path: Path,
) -> None:
    turn = {
        "update": {"requirements": ["Output: billing", "angry customers"], "constraints": ["A: x"]},
        "reply": "Any rules?",
    }
    # One scripted answer: a second call of the model would fall back to guided mode.
    model = GenericFakeChatModel(messages=iter([json.dumps(turn)]))
    db = open_database(tmp_path / "t.db")
    project = create_project(db, "tickets")
    save_spec(
        db,
        project.id,
        TaskSpec(goal="sort tickets", output_kind="labels", labels=("billing", "bug")),
    )
    interview = Interview(
        db, get_project(db, "tickets"), model=fixed_source(model, "m"), cwd=tmp_path
    )
    assert interview.handle(ISSUE_INPUT).text.startswith("Got the input.")
    assert interview.handle("Output: billing").text.startswith("Saved example 1: billing")
    assert interview.handle("cover angry customers").text.endswith("Any rules?")
    assert interview.mode == "model"
    assert [r.text for r in interview.spec.requirements] == ["angry customers"]
    assert interview.spec.constraints == ()


PASTED_TICKETS = """\
My parcel has not arrived after two weeks
The app crashes when I open settings
I was charged twice for one order
How do I change the email on my account?"""


def test_a_pasted_list_of_messages_is_offered_as_unlabeled_inputs(tmp_path: Path) -> None:
    interview = issue_interview(tmp_path)
    before = interview.spec
    offer = interview.handle(PASTED_TICKETS).text
    assert offer.startswith("Those look like 4 messages without answers. Send /unlabeled")
    # Neither stored nor taken as a case, rule or style.
    assert list_examples(interview.db, interview.project_id) == []
    assert interview.spec == before
    stored = interview.handle("/unlabeled").text
    assert stored.startswith("Stored 4 inputs without answers from the pasted lines.")
    rows = list_examples(interview.db, interview.project_id)
    assert [(r.prompt, r.answered, r.status) for r in rows] == [
        (line, False, "pending") for line in PASTED_TICKETS.splitlines()
    ]
    # Pasting them again after the command adds nothing new.
    again = interview.handle("/unlabeled\n" + PASTED_TICKETS).text
    assert again.startswith("Stored 0 inputs without answers from the pasted lines (4 already")


def test_slash_unlabeled_reads_a_file_and_reports_bad_lines(tmp_path: Path) -> None:
    interview = issue_interview(tmp_path)
    (tmp_path / "tickets.jsonl").write_text(
        '{"text": "Where is my refund?"}\n{"label": "billing"}\n', encoding="utf-8"
    )
    reply = interview.handle("/unlabeled tickets.jsonl").text
    assert reply.startswith(f"Stored 1 input without answers from {tmp_path / 'tickets.jsonl'}")
    assert "1 lines were not usable:" in reply and "tickets.jsonl:2:" in reply
    assert interview.handle("/unlabeled").text.startswith("Paste the messages after /unlabeled")


def test_lines_typed_before_the_task_is_known_are_not_offered_as_inputs(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    interview = Interview(db, create_project(db, "tickets"), cwd=tmp_path)
    interview.opening()
    reply = interview.handle(PASTED_TICKETS).text
    assert "without answers" not in reply


def test_inputs_without_answers_count_to_label_not_off_format(tmp_path: Path) -> None:
    from agent.coverage import coverage

    interview = issue_interview(tmp_path)
    interview.handle("/unlabeled\n" + PASTED_TICKETS)
    counts = coverage(interview.spec, list_examples(interview.db, interview.project_id))
    assert (counts.pending, counts.unlabeled, counts.off_spec) == (4, 4, 0)
