"""Drafting: spread over thin labels and cases, robust parsing, dedupe, pending rows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult

from agent.dedupe import NEAR_DUPLICATE_JACCARD, DuplicateIndex, jaccard, normalized_tokens
from agent.drafting import (
    DraftSlot,
    describe_report,
    draft_examples,
    draft_messages,
    parse_drafts,
    plan_slots,
)
from agent.spec import Requirement, TaskSpec, save_spec
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
    assert "answer 1, line 4: not valid JSON" in text


class BrokenTeacher(BaseChatModel):
    """A teacher whose second call fails, as a dropped connection would."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        from langchain_core.outputs import ChatGeneration

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
    assert report.error == "ConnectionError: connection refused"
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
