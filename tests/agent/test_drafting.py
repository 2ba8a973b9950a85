"""Drafting: spread over thin labels and cases, robust parsing, dedupe, pending rows stored as
they come; a weak teacher's one input at a time with a labeller; progress and cancel."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from agent.dedupe import NEAR_DUPLICATE_JACCARD, DuplicateIndex, jaccard, normalized_tokens
from agent.draft_inputs import MAX_INPUT_TOKENS, clean_input, input_noun
from agent.drafting import (
    CALLS_PER_INPUT,
    DraftReport,
    DraftSlot,
    describe_report,
    draft_examples,
    draft_messages,
    fitting_answer,
    parse_drafts,
    plan_slots,
)
from agent.models import Endpoint, openai_chat_model
from agent.spec import Requirement, TaskSpec, save_spec
from agent.work import Work
from store.database import open_database
from store.errors import InputError
from store.examples import NewExample, add_examples, list_examples, prompt_response
from store.projects import create_project

LABELS = TaskSpec(
    goal="classify support tickets",
    input_description="one ticket",
    output_kind="labels",
    labels=("billing", "technical", "shipping"),
    requirements=(Requirement("R1", "angry customers"), Requirement("R2", "tickets in German")),
)
JSON_SPEC = TaskSpec(
    goal="extract the name and order id",
    output_kind="json",
    json_fields=("name", "order_id"),
    json_sample='{"name": "Ada", "order_id": "A-1"}',
)


def line(prompt: str, output: object, *requirements: str) -> str:
    return json.dumps({"input": prompt, "output": output, "requirements": list(requirements)})


class CountingTeacher(FakeMessagesListChatModel):
    """Scripted answers, counting the calls."""

    calls: int = 0

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls += 1
        return super()._generate(messages, *args, **kwargs)


def project_with(db: sqlite_utils.Database, spec: TaskSpec, rows: list[NewExample]) -> int:
    project = create_project(db, "task")
    save_spec(db, project.id, spec)
    if rows:
        add_examples(db, project.id, rows, source="typed")
    return project.id


def test_slots_go_to_the_thinnest_labels_and_requirements(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    rows = [prompt_response(f"b{i}", "billing") for i in range(3)] + [
        NewExample(messages=prompt_response("t0", "technical").messages, tags=("R1",))
    ]
    project_id = project_with(db, LABELS, rows)
    slots = plan_slots(LABELS, list_examples(db, project_id), 5)
    assert Counter(s.label for s in slots) == {"shipping": 3, "technical": 2}
    assert Counter(s.requirement.id for s in slots if s.requirement) == {"R2": 3, "R1": 2}
    assert plan_slots(TaskSpec(goal="g"), [], 2) == [DraftSlot(), DraftSlot()]


def test_the_request_names_the_spec_the_slots_and_existing_examples() -> None:
    slots = [DraftSlot("shipping", LABELS.requirements[1])]
    request = draft_messages(LABELS, slots, [])[-1].content
    assert isinstance(request, str)
    assert "Answer: one label of billing, technical, shipping" in request
    assert "Case R2: tickets in German" in request
    assert "1. answer label shipping; covers R2 (tickets in German)" in request
    assert "one JSON object per line" in request


def test_parse_drafts_keeps_good_lines_and_says_why_bad_ones_went() -> None:
    answer = "\n".join(
        [
            "Here are your examples:",
            "```jsonl",
            line("Where is my parcel?", "Shipping", "R2"),
            '1. {"input": "Card charged twice", "output": "billing", "requirements": [],}',
            line("My app crashes", "refund"),
            '{"input": "", "output": "billing"}',
            '{"input": "truncated", "output": "bil',
            '["not", "an", "object"]',
            line("Login fails", "technical", "R9"),
            "```",
        ]
    )
    slots = [DraftSlot("shipping", LABELS.requirements[1])] * 8
    drafts, skipped = parse_drafts(answer, LABELS, slots)
    assert [(d.input, d.output, d.requirement_ids) for d in drafts] == [
        ("Where is my parcel?", "shipping", ("R2",)),
        ("Card charged twice", "billing", ()),
        ("Login fails", "technical", ()),
    ]
    reasons = [s.reason for s in skipped]
    assert "output 'refund' is not one of the labels" in reasons
    assert 'no "input" text' in reasons
    assert any(r.startswith("not valid JSON (Unterminated string") for r in reasons)
    assert "not a JSON object" in reasons
    # Prose outside the code fence is not a draft; lines count within the fence.
    assert skipped[0].where == "answer, line 3"


def test_parse_drafts_for_json_answers() -> None:
    answer = "\n".join(
        [
            line("Hi, Ada here, order A-7", {"name": "Ada", "order_id": "A-7"}),
            line("Bob, B-2", '{"name": "Bob", "order_id": "B-2"}'),
            line("Carol", {"name": "Carol"}),
            line("Dan", "not json"),
        ]
    )
    drafts, skipped = parse_drafts(answer, JSON_SPEC, [DraftSlot()] * 4)
    assert [d.output for d in drafts] == [
        '{"name": "Ada", "order_id": "A-7"}',
        '{"name": "Bob", "order_id": "B-2"}',
    ]
    assert [s.reason for s in skipped] == [
        "the answer lacks the key order_id",
        '"output" is not a JSON object (Expecting value at line 1 column 1)',
    ]
    array_drafts, _ = parse_drafts(
        f"[{line('Eve E-5', {'name': 'Eve', 'order_id': 'E-5'})}]", JSON_SPEC, []
    )
    assert len(array_drafts) == 1


def test_near_duplicates() -> None:
    sentence = "my card was charged twice for the same order last week please help"
    index = DuplicateIndex()
    index.add(sentence)
    assert (
        index.find("My card was CHARGED twice, for the same order last week -- please help!")
        == "exact"
    )
    assert index.find(sentence + " me") == "near"
    assert index.find("my card was charged twice for the same order last month please help") is None
    assert index.find("where is my parcel") is None
    assert normalized_tokens("Ünïcode, “quotes”!") == ("ünïcode", "quotes")
    assert jaccard(frozenset("ab"), frozenset("abc")) == pytest.approx(2 / 3)
    assert NEAR_DUPLICATE_JACCARD == 0.9


def test_draft_examples_stores_pending_drafts_without_repeats(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project_id = project_with(
        db, LABELS, [prompt_response("My card was charged twice for one order", "billing")]
    )
    teacher = CountingTeacher(
        responses=[
            AIMessage(
                "\n".join(
                    [
                        line("my card was charged twice for one order!", "billing"),
                        line("Where is my parcel? It is two weeks late", "shipping", "R1"),
                        line("where is my parcel?? it is two weeks late.", "shipping"),
                        "garbage line",
                    ]
                )
            ),
            AIMessage(line("The app logs me out all the time", "technical", "R2")),
        ]
    )
    report = draft_examples(db, project_id, teacher, 2)
    assert (report.added, report.duplicates, report.calls) == (2, 2, 2)
    assert [s.reason for s in report.skipped] == [
        "not valid JSON (Expecting value at line 1 column 1)"
    ]
    drafted = [e for e in list_examples(db, project_id) if e.source == "drafted"]
    assert [(e.prompt, e.response, e.status, e.tags) for e in drafted] == [
        ("Where is my parcel? It is two weeks late", "shipping", "pending", ("R1",)),
        ("The app logs me out all the time", "technical", "pending", ("R2",)),
    ]
    text = describe_report(report, "task")
    assert text.startswith("Drafted 2 of 2 examples; they wait as pending for review")
    assert "2 repeated an existing example" in text
    assert "1 of the teacher's answers were not usable:" in text
    assert "answer 1, line 4: not valid JSON" in text


def test_the_report_says_where_to_review_and_label_in_the_app_and_the_command() -> None:
    text = describe_report(
        DraftReport(requested=3, added=3, duplicates=0, skipped=(), calls=3, unlabeled=2),
        "tickets",
    )
    assert "in the Dataset area (or: tunesmith examples list tickets)" in text
    assert "2 of them have no answer yet" in text
    assert "with l in the Dataset area (or: tunesmith label tickets)" in text


class BrokenTeacher(BaseChatModel):
    """A teacher whose second call fails, as a dropped connection would."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls += 1
        if self.calls > 1:
            raise ConnectionError("connection refused")
        lines = [line(f"ticket number {i} about a parcel", "shipping") for i in range(10)]
        return ChatResult(generations=[ChatGeneration(message=AIMessage("\n".join(lines)))])


def test_a_failing_teacher_keeps_what_it_already_wrote(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project_id = project_with(db, LABELS, [])
    report = draft_examples(db, project_id, BrokenTeacher(), 15)
    assert report.added == 10
    assert report.error == "The teacher stopped answering: ConnectionError: connection refused"
    text = describe_report(report, "task")
    assert "The teacher stopped answering: ConnectionError: connection refused" in text


def test_drafting_needs_a_goal_and_an_answer_format(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project_id = project_with(db, TaskSpec(goal="classify"), [])
    teacher = CountingTeacher(responses=[AIMessage("")])
    with pytest.raises(InputError, match="needs a goal and an answer format"):
        draft_examples(db, project_id, teacher, 3)
    with pytest.raises(InputError, match="between 1 and 200"):
        draft_examples(db, project_id, teacher, 0)
    assert teacher.calls == 0


class ScriptedTeacher(BaseChatModel):
    """Answers from a script (the last one repeats), recording each request and its options."""

    answers: list[str]
    requests: list[list[BaseMessage]] = Field(default_factory=list)
    options: list[dict[str, Any]] = Field(default_factory=list)
    on_call: Callable[[int], None] | None = None
    """Called with the call's number before it answers (a person pressing esc, say)."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.requests.append(messages)
        self.options.append({"stop": stop, **kwargs})
        if self.on_call is not None:
            self.on_call(len(self.requests))
        text = self.answers[min(len(self.requests), len(self.answers)) - 1]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


TYPED_TICKETS = [
    ("My card was charged twice for one order", "billing"),
    ("The app crashes when I open settings", "technical"),
    ("My parcel has not arrived after two weeks", "shipping"),
]


def tickets_project(db: sqlite_utils.Database) -> int:
    return project_with(
        db, LABELS, [prompt_response(prompt, label) for prompt, label in TYPED_TICKETS]
    )


def drafted(db: sqlite_utils.Database, project_id: int) -> list[tuple[str, str, tuple[str, ...]]]:
    return [
        (e.prompt, e.response, e.tags)
        for e in list_examples(db, project_id)
        if e.source == "drafted"
    ]


def test_a_weak_teacher_writes_one_input_a_call_and_a_labeller_answers_it(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path / "t.db")
    project_id = tickets_project(db)
    teacher = ScriptedTeacher(
        answers=[
            "",
            "billing",
            '"I was billed for a plan I cancelled last month"',
            "Write a new ticket whose answer is shipping.",
            "my card was charged twice for one order!",
            "I was billed for a plan I cancelled last month.",
            '{"input": "Please send the invoice for order 7 again", "output": "billing"}',
            "1. Ticket: The login page shows a blank screen on my phone",
        ]
    )
    labelled: list[str] = []

    def labeller(text: str) -> str | None:
        labelled.append(text)
        if text.startswith("I was billed"):
            return "Billing."
        return "refund" if text.startswith("Please send") else "technical"

    progress: list[str] = []
    report = draft_examples(
        db,
        project_id,
        teacher,
        3,
        weak=True,
        labeller=labeller,
        work=Work(report=progress.append),
    )

    assert drafted(db, project_id) == [
        ("I was billed for a plan I cancelled last month", "billing", ("R1",)),
        # "refund" is no label: the input waits, unanswered, for the person.
        ("Please send the invoice for order 7 again", "", ("R2",)),
        ("The login page shows a blank screen on my phone", "technical", ("R1",)),
    ]
    assert [e.answered for e in list_examples(db, project_id)[3:]] == [True, False, True]
    assert labelled == [text for text, _, _ in drafted(db, project_id)]
    assert progress == ["drafted 1/3", "drafted 2/3", "drafted 3/3"]
    assert (report.added, report.unlabeled, report.duplicates, report.calls) == (3, 1, 2, 8)
    assert not report.cancelled
    assert [s.reason for s in report.skipped] == [
        "the answer is empty",
        '"billing" is too short to be an input',
        "the answer repeats the request",
    ]
    text = describe_report(report, "task")
    assert text.startswith("Drafted 3 of 3 examples")
    assert "1 of them have no answer yet" in text
    assert "2 repeated an existing example" in text


def test_a_weak_teacher_is_asked_for_one_short_sampled_line_in_a_few_shot_chat(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path / "t.db")
    project_id = tickets_project(db)
    teacher = ScriptedTeacher(answers=["Where can I change the address on my order", "x"])
    draft_examples(db, project_id, teacher, 1, weak=True)

    [request] = teacher.requests
    assert isinstance(request[0], SystemMessage)
    assert "one realistic ticket at a time for this task: classify support tickets" in str(
        request[0].content
    )
    shots = request[1:-1]
    assert [type(m) for m in shots] == [HumanMessage, AIMessage] * len(TYPED_TICKETS)
    asked = {
        answer.content: ask.content for ask, answer in zip(shots[::2], shots[1::2], strict=True)
    }
    assert asked[TYPED_TICKETS[0][0]] == "Write a new ticket whose answer is billing."
    # The slot is the thinnest label and case.
    assert request[-1].content == (
        "Write a new ticket whose answer is billing. It is about: angry customers."
    )
    [options] = teacher.options
    assert options["stop"] == ["\n"]
    assert options["max_tokens"] == MAX_INPUT_TOKENS
    assert 0.8 <= options["temperature"] <= 1.0
    assert isinstance(options["seed"], int)


def test_without_a_labeller_weak_drafts_wait_unanswered(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project_id = tickets_project(db)
    teacher = ScriptedTeacher(
        answers=["I want a refund for the broken blender", "Where is the parcel I ordered"]
    )
    report = draft_examples(db, project_id, teacher, 2, weak=True)

    assert [(prompt, answer) for prompt, answer, _ in drafted(db, project_id)] == [
        ("I want a refund for the broken blender", ""),
        ("Where is the parcel I ordered", ""),
    ]
    assert {e.status for e in list_examples(db, project_id)[3:]} == {"pending"}
    assert (report.added, report.unlabeled) == (2, 2)


def test_a_weak_teacher_that_writes_nothing_usable_gets_a_bounded_number_of_calls(
    tmp_path: Path,
) -> None:
    db = open_database(tmp_path / "t.db")
    project_id = tickets_project(db)
    teacher = ScriptedTeacher(answers=["ok"])
    report = draft_examples(db, project_id, teacher, 4, weak=True, labeller=lambda text: None)

    assert report.calls == len(teacher.requests) == 4 * CALLS_PER_INPUT
    assert report.added == 0
    assert describe_report(report, "task").startswith("No usable drafts out of 4 asked for.")


@pytest.mark.parametrize("weak", [True, False])
def test_a_cancel_stops_within_one_call_and_keeps_what_was_stored(
    tmp_path: Path, weak: bool
) -> None:
    db = open_database(tmp_path / "t.db")
    project_id = tickets_project(db)
    work = Work()
    if weak:
        answers = [f"Ticket number {n} is about a missing refund" for n in range(1, 20)]
    else:
        answers = [
            "\n".join(line(f"Ticket {n}x{i} about a refund", "billing") for i in range(10))
            for n in range(1, 5)
        ]

    def press_esc(call: int) -> None:
        if call == 2:
            work.cancel.set()

    teacher = ScriptedTeacher(answers=answers, on_call=press_esc)
    labelled: list[str] = []

    def labeller(text: str) -> str:
        labelled.append(text)
        return "billing"

    report = draft_examples(db, project_id, teacher, 30, weak=weak, labeller=labeller, work=work)

    # The call under way when the cancel came is the last one; what it wrote is kept.
    assert len(teacher.requests) == report.calls == 2
    assert report.cancelled
    stored = drafted(db, project_id)
    if weak:
        assert [answer for _, answer, _ in stored] == ["billing", ""]
        assert len(labelled) == 1
    else:
        assert len(stored) == 20
    assert report.added == len(stored)
    text = describe_report(report, "task")
    assert text.startswith(f"Cancelled after {len(stored)} of 30 drafts")


def test_a_strong_teacher_stores_each_batch_as_it_comes(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project_id = project_with(db, LABELS, [])
    stored_before_call: list[int] = []

    def count_stored(call: int) -> None:
        stored_before_call.append(len(drafted(db, project_id)))

    answers = [
        "\n".join(line(f"Ticket {n}x{i} about a parcel", "shipping") for i in range(10))
        for n in range(1, 3)
    ]
    progress: list[str] = []
    teacher = ScriptedTeacher(answers=answers, on_call=count_stored)
    report = draft_examples(db, project_id, teacher, 15, work=Work(report=progress.append))

    assert stored_before_call == [0, 10]
    assert progress == ["drafted 10/15", "drafted 15/15"]
    assert report.added == 15


class _SilentHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that never answers in time."""

    def do_POST(self) -> None:
        time.sleep(2)

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


def test_a_teacher_that_times_out_is_reported_with_its_time_limit(tmp_path: Path) -> None:
    db = open_database(tmp_path / "t.db")
    project_id = tickets_project(db)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SilentHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = Endpoint("teacher", f"http://127.0.0.1:{server.server_address[1]}/v1")
    try:
        teacher = openai_chat_model(endpoint, timeout=0.5, max_retries=0)
        report = draft_examples(db, project_id, teacher, 2, weak=True)
    finally:
        server.shutdown()
        server.server_close()

    assert report.error == (
        "The teacher stopped answering: no answer within 0.5 s (the time limit of one request)"
    )
    assert report.error in describe_report(report, "task")


@pytest.mark.parametrize(
    ("answer", "fits"),
    [("Technical", "technical"), (" shipping. ", "shipping"), ("refund", None), ("", None)],
)
def test_a_labellers_answer_must_be_a_label(answer: str, fits: str | None) -> None:
    assert fitting_answer(LABELS, answer) == fits


def test_a_labellers_json_answer_must_fit_the_spec() -> None:
    assert fitting_answer(JSON_SPEC, '{"name": "Ada", "order_id": "A-1"}') is not None
    assert fitting_answer(JSON_SPEC, '{"name": "Ada"}') is None
    assert fitting_answer(JSON_SPEC, None) is None


@pytest.mark.parametrize(
    ("description", "noun"),
    [("one ticket", "ticket"), ("A customer email.", "customer email"), (None, "input")],
)
def test_what_an_input_is_called(description: str | None, noun: str) -> None:
    assert input_noun(TaskSpec(input_description=description)) == noun


@pytest.mark.parametrize(
    ("answer", "cut_short", "cleaned"),
    [
        ("  - Input: “My invoice lists a fee twice”\nmore", False, "My invoice lists a fee twice"),
        ("Ticket: The app froze. Then it crashed and I", True, "Ticket: The app froze."),
        ("customer support ticket: The app froze. Then it", True, "The app froze."),
        ("The app froze and then it", True, InputError),
        ("Hi!", False, InputError),
    ],
)
def test_what_a_weak_teacher_wrote_is_cleaned_to_one_input(
    answer: str, cut_short: bool, cleaned: str | type[InputError]
) -> None:
    spec = TaskSpec(input_description="a customer support ticket")
    if isinstance(cleaned, str):
        assert clean_input(answer, spec, cut_short=cut_short) == cleaned
    else:
        with pytest.raises(cleaned):
            clean_input(answer, spec, cut_short=cut_short)
